// The reference for `hiwar bench asr`: whisper.cpp called directly through whisper.h, built
// from the same vendored source hiwar links (whisper-rs-sys).
//
//   whisper_ref MODEL THREADS AUDIO_CTX LANG REPS MODE CLIP.f32...
//
// MODE "greedy" decodes as hiwar does (greedy, one window, a token budget, temperature
// fallback); "greedy-nofallback" the same without the fallback; "cli" with whisper-cli's
// defaults (beam 5, best of 5, temperature fallback, the full 30 s window, no token budget;
// AUDIO_CTX is ignored). LANG may be "auto": whisper's own detection over every language.
// Each clip is raw little-endian f32, 16 kHz mono. For each clip it prints one line:
// "<median ms over REPS>\t<detected language>\t<text>".

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "whisper.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)level; (void)text; (void)user;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: %s MODEL THREADS AUDIO_CTX LANG REPS TEMPERATURE_INC CLIP.f32...\n", argv[0]);
        return 2;
    }
    whisper_log_set(quiet, NULL);
    int threads = atoi(argv[2]), audio_ctx = atoi(argv[3]), reps = atoi(argv[5]);
    const char *lang = argv[4];
    const char *mode = argv[6];
    int cli = strcmp(mode, "cli") == 0;
    float temperature_inc = strcmp(mode, "greedy-nofallback") == 0 ? 0.0f : 0.2f;
    struct whisper_context_params cparams = whisper_context_default_params();
    // As hiwar loads it (whisper-rs's default): no flash attention.
    cparams.flash_attn = false;
    struct whisper_context *ctx = whisper_init_from_file_with_params(argv[1], cparams);
    if (!ctx) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    struct whisper_state *state = whisper_init_state(ctx);

    for (int c = 7; c < argc; c++) {
        FILE *f = fopen(argv[c], "rb");
        if (!f) { fprintf(stderr, "cannot open %s\n", argv[c]); return 1; }
        fseek(f, 0, SEEK_END);
        long bytes = ftell(f);
        fseek(f, 0, SEEK_SET);
        int n = (int)(bytes / 4);
        float *pcm = malloc(bytes);
        if (fread(pcm, 4, n, f) != (size_t)n) { fprintf(stderr, "short read %s\n", argv[c]); return 1; }
        fclose(f);

        double *times = calloc(reps, sizeof(double));
        for (int r = 0; r < reps; r++) {
            struct whisper_full_params p = whisper_full_default_params(cli ? WHISPER_SAMPLING_BEAM_SEARCH : WHISPER_SAMPLING_GREEDY);
            p.n_threads = threads;
            p.language = lang;
            p.detect_language = false;
            p.print_progress = false;
            p.print_realtime = false;
            p.print_special = false;
            p.print_timestamps = false;
            if (cli) {
                // whisper-cli's defaults: beam 5, best of 5, fallback 0.2, entropy 2.4,
                // log-probability -1.0, no-speech 0.6, no context carried.
                p.beam_search.beam_size = 5;
                p.greedy.best_of = 5;
                p.no_context = true;
                double t0 = now_ms();
                if (whisper_full_with_state(ctx, state, p, pcm, n) != 0) { fprintf(stderr, "whisper_full failed\n"); return 1; }
                times[r] = now_ms() - t0;
                continue;
            }
            p.greedy.best_of = 5;
            p.entropy_thold = 2.4f;
            p.logprob_thold = -1.0f;
            p.audio_ctx = audio_ctx;
            p.no_context = true;
            p.suppress_nst = true;
            p.suppress_blank = true;
            p.token_timestamps = true;
            p.no_speech_thold = 0.6f;
            p.temperature_inc = temperature_inc;
            // As hiwar decodes an utterance: one window, a token budget of 16 + 20 per second.
            double seconds = n / 16000.0;
            if (seconds <= 30.0) {
                p.single_segment = true;
                double budget = 16.0 + seconds * 20.0;
                p.max_tokens = (int)(budget < 224.0 ? budget : 224.0);
            }
            double t0 = now_ms();
            if (whisper_full_with_state(ctx, state, p, pcm, n) != 0) { fprintf(stderr, "whisper_full failed\n"); return 1; }
            times[r] = now_ms() - t0;
        }
        qsort(times, reps, sizeof(double), cmp);
        int lang_id = whisper_full_lang_id_from_state(state);
        printf("%.1f\t%s\t", times[reps / 2], lang_id >= 0 ? whisper_lang_str(lang_id) : "");
        int segments = whisper_full_n_segments_from_state(state);
        for (int s = 0; s < segments; s++) {
            printf("%s%s", s ? " " : "", whisper_full_get_segment_text_from_state(state, s));
        }
        printf("\n");
        free(times);
        free(pcm);
    }
    whisper_free_state(state);
    whisper_free(ctx);
    return 0;
}
