# hiwar's changes to whisper.cpp, applied to the copy of its source that whisper-rs-sys builds
# (in its OUT_DIR, never the registry's): .cargo/config.toml names this file as CMake's
# CMAKE_PROJECT_INCLUDE, which whisper-rs-sys passes on, so it runs after each project() of that
# build, before anything is compiled. Each change is found by its exact text; if whisper.cpp
# changed under it the build stops here and says which, rather than building without it.
# ARCHITECTURE.md ("whisper.cpp, changed in one place") says why this is not a fork.

# The stamp names this set of changes: change it with them. `./bootstrap` rebuilds a whisper.cpp
# whose source lacks it (whisper-rs-sys's build script does not rerun when this file changes).
set(_hiwar_stamp "hiwar whisper.cpp changes 3")
set(_hiwar_file "${CMAKE_SOURCE_DIR}/src/whisper.cpp")
file(READ "${_hiwar_file}" _hiwar_src)
string(FIND "${_hiwar_src}" "// ${_hiwar_stamp}" _hiwar_done)
string(FIND "${_hiwar_src}" "// hiwar" _hiwar_older)
if(_hiwar_done EQUAL -1 AND NOT _hiwar_older EQUAL -1)
  message(FATAL_ERROR "hiwar: ${_hiwar_file} carries an older set of hiwar's changes: `cargo clean -p whisper-rs-sys` (./bootstrap does it) and build again")
endif()
if(_hiwar_done EQUAL -1)
  # 1. A batch whose logits are wanted for its last token alone (a prompt, fed to one decoder)
  #    projects only that row onto the 51,865-token vocabulary. whisper.cpp projects every row
  #    and copies out the flagged ones: for a 98-token prompt, about half of the prompt's
  #    multiply-adds go to rows no one reads. (The upstream source has this view commented
  #    out, "might be useful in the future".) The worst-case graph, which sizes the buffers,
  #    keeps every row.
  set(_hiwar_old1 [=[    struct ggml_tensor * logits = ggml_mul_mat(ctx0, model.d_te, cur);
]=])
  set(_hiwar_new1 [=[    // hiwar: only the last row, when a batch wants its last token's logits alone
    bool last_only = !worst_case && n_tokens > 1 && batch.logits[n_tokens - 1];
    for (int i = 0; last_only && i < n_tokens - 1; ++i) {
        last_only = batch.logits[i] == 0;
    }
    if (last_only) {
        cur = ggml_view_2d(ctx0, cur, cur->ne[0], 1, cur->nb[1], (cur->ne[1] - 1)*cur->nb[1]);
    }

    struct ggml_tensor * logits = ggml_mul_mat(ctx0, model.d_te, cur);
]=])
  # 2. Reading the logits back: a graph of one row holds the last token's at its start.
  set(_hiwar_old2 [=[        ggml_backend_tensor_get(logits, logits_out.data() + (n_vocab*i), sizeof(float)*(n_vocab*i), sizeof(float)*n_vocab);]=])
  set(_hiwar_new2 [=[        ggml_backend_tensor_get(logits, logits_out.data() + (n_vocab*i), sizeof(float)*(n_vocab*(logits->ne[1] == 1 ? 0 : i)), sizeof(float)*n_vocab);]=])
  # 3. The encoder can be stopped between two of its operations. whisper.cpp asks its abort
  #    callback only once the whole encoder has run (and `whisper_encode` takes none), so a
  #    partial that a pause has made useless held the whisper thread for up to the encoder's
  #    ~100 ms before the speculative final could begin. The graphs that
  #    `whisper_encode_internal` computes now run with the CPU backend's abort callback set to
  #    its own (or, where it has none, to the one hiwar sets for this thread with
  #    `hiwar_whisper_encode_abort`); every other graph runs with none.
  set(_hiwar_old3 [=[static bool ggml_graph_compute_helper(
      ggml_backend_sched_t   sched,
]=])
  set(_hiwar_new3 [=[// hiwar: the abort callback of the encoder graphs being computed on this thread, and the one
// hiwar sets for encodes that take none (`whisper_encode_with_state`, detection)
static thread_local ggml_abort_callback hiwar_graph_abort = nullptr;
static thread_local void * hiwar_graph_abort_data = nullptr;
static thread_local ggml_abort_callback hiwar_encode_abort = nullptr;
static thread_local void * hiwar_encode_abort_data = nullptr;

extern "C" void hiwar_whisper_encode_abort(ggml_abort_callback abort_callback, void * abort_callback_data) {
    hiwar_encode_abort = abort_callback;
    hiwar_encode_abort_data = abort_callback_data;
}

static bool ggml_graph_compute_helper(
      ggml_backend_sched_t   sched,
]=])
  set(_hiwar_old4 [=[        auto * fn_set_n_threads = (ggml_backend_set_n_threads_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads");
        if (fn_set_n_threads) {
            fn_set_n_threads(backend, n_threads);
        }
]=])
  set(_hiwar_new4 [=[        auto * fn_set_n_threads = (ggml_backend_set_n_threads_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads");
        if (fn_set_n_threads) {
            fn_set_n_threads(backend, n_threads);
        }
        // hiwar: the encoder's abort callback while it runs, none otherwise
        auto * fn_set_abort = (ggml_backend_set_abort_callback_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_abort_callback");
        if (fn_set_abort) {
            fn_set_abort(backend, hiwar_graph_abort, hiwar_graph_abort_data);
        }
]=])
  set(_hiwar_old5 [=[                   void * abort_callback_data) {
    const int64_t t_start_us = ggml_time_us();

    // conv
]=])
  set(_hiwar_new5 [=[                   void * abort_callback_data) {
    const int64_t t_start_us = ggml_time_us();

    // hiwar: the encoder's graphs stop between two operations when the abort callback says so
    if (!abort_callback) {
        abort_callback = hiwar_encode_abort;
        abort_callback_data = hiwar_encode_abort_data;
    }
    struct hiwar_abort_scope {
        hiwar_abort_scope(ggml_abort_callback cb, void * data) { hiwar_graph_abort = cb; hiwar_graph_abort_data = data; }
        ~hiwar_abort_scope() { hiwar_graph_abort = nullptr; hiwar_graph_abort_data = nullptr; }
    } hiwar_scope(abort_callback, abort_callback_data);

    // conv
]=])
  # 6. A decode may ask for the logits of every token it feeds, not the last one's alone: a
  #    draft (what the last decode of the same audio said) is then checked in one call, each
  #    row against the token the greedy decoder picks (speech/src/whisper/greedy.rs).
  #    `whisper_decode_with_state` flags only the last row; with `hiwar_whisper_all_rows(true)`
  #    on this thread it flags every one, and `hiwar_whisper_rows_logits` gives the rows of this
  #    thread's last decode.
  set(_hiwar_old6 [=[int whisper_decode_with_state(struct whisper_context * ctx, struct whisper_state * state, const whisper_token * tokens, int n_tokens, int n_past, int n_threads) {
    whisper_batch_prep_legacy(state->batch, tokens, n_tokens, n_past, 0);

    whisper_kv_cache_seq_rm(state->kv_self, 0, n_past, -1);

    if (!whisper_decode_internal(*ctx, *state, state->batch, n_threads, false, nullptr, nullptr)) {
        WHISPER_LOG_ERROR("%s: failed to eval\n", __func__);
        return 1;
    }

    return 0;
}
]=])
  set(_hiwar_new6 [=[// hiwar: every row's logits for this thread's decodes while set, and the last decode's rows
static thread_local bool hiwar_all_rows = false;
static thread_local const float * hiwar_rows = nullptr;

extern "C" void hiwar_whisper_all_rows(bool all) {
    hiwar_all_rows = all;
}

extern "C" const float * hiwar_whisper_rows_logits(void) {
    return hiwar_rows;
}

int whisper_decode_with_state(struct whisper_context * ctx, struct whisper_state * state, const whisper_token * tokens, int n_tokens, int n_past, int n_threads) {
    whisper_batch_prep_legacy(state->batch, tokens, n_tokens, n_past, 0);
    hiwar_rows = nullptr;
    for (int i = 0; hiwar_all_rows && i < n_tokens; ++i) {
        state->batch.logits[i] = 1;
    }

    whisper_kv_cache_seq_rm(state->kv_self, 0, n_past, -1);

    if (!whisper_decode_internal(*ctx, *state, state->batch, n_threads, false, nullptr, nullptr)) {
        WHISPER_LOG_ERROR("%s: failed to eval\n", __func__);
        return 1;
    }
    hiwar_rows = state->logits.data();

    return 0;
}
]=])
  foreach(_hiwar_i 1 2 3 4 5 6)
    string(FIND "${_hiwar_src}" "${_hiwar_old${_hiwar_i}}" _hiwar_at)
    if(_hiwar_at EQUAL -1)
      message(FATAL_ERROR "hiwar: change ${_hiwar_i} of speech/whisper-cpp/patch.cmake no longer matches ${_hiwar_file}: whisper.cpp has changed; update the change or drop it")
    endif()
    string(REPLACE "${_hiwar_old${_hiwar_i}}" "${_hiwar_new${_hiwar_i}}" _hiwar_src "${_hiwar_src}")
  endforeach()
  file(WRITE "${_hiwar_file}" "// ${_hiwar_stamp}\n${_hiwar_src}")
  message(STATUS "hiwar: whisper.cpp patched (speech/whisper-cpp/patch.cmake)")
endif()
