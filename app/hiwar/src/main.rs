//! `hiwar`: the Arabic-first digital human runtime's command line.

mod cli;
mod converse;
mod demo;
mod doctor;
mod say;
mod transcribe;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{BenchCommand, Cli, Command, ModelsCommand};

fn main() -> ExitCode {
    process_settings();
    let cli = Cli::parse();
    let config = match hiwar_core::config::Config::load(cli.config.as_deref()).and_then(|c| {
        hiwar_core::log::init(&c.log, cli.verbose)?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(cli, config) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Settings native libraries read from the environment when they load, applied before any
/// thread starts:
/// - whisper.cpp runs its threads under OpenMP, and libgomp reads its spin count when the
///   process loads, before `main`. Its default spins 300 000 times at every barrier, which
///   collapses when anything else shares the cores (two transcriptions at once on 2 cores took
///   20 s instead of 8; without OpenMP, ggml's own barrier spins for ever and took 56 s). A
///   short spin (1 000) keeps a lone decode within ~5 % of the default and makes contention
///   degrade in proportion (docs/benchmarks.md), so hiwar starts itself again, once, with
///   `GOMP_SPINCOUNT=1000` unless the operator has set `GOMP_SPINCOUNT` or `OMP_WAIT_POLICY`.
/// - ONNX Runtime's telemetry writes a persistent device identifier and queued events under
///   ~/.cache/Microsoft as soon as it starts, whatever the API asks later: `ORT_DISABLE_TELEMETRY`
///   must be set before the library is loaded.
fn process_settings() {
    const TELEMETRY: &str = "ORT_DISABLE_TELEMETRY";
    let operator_set = ["GOMP_SPINCOUNT", "OMP_WAIT_POLICY"].iter().any(|v| std::env::var_os(v).is_some());
    if !operator_set && let Ok(exe) = std::env::current_exe() {
        use std::os::unix::process::CommandExt as _;
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_default();
        let mut again = std::process::Command::new(exe);
        again.arg0(arg0).args(args).env("GOMP_SPINCOUNT", "1000");
        if std::env::var_os(TELEMETRY).is_none() {
            again.env(TELEMETRY, "1");
        }
        // Only returns if the exec failed (e.g. the binary was replaced while running): go
        // on with the library defaults.
        let _ = again.exec();
    }
    if std::env::var_os(TELEMETRY).is_none() {
        // SAFETY: no other thread exists yet (this is the first thing `main` does, and no
        // library hiwar links starts threads before it).
        #[allow(unsafe_code, reason = "the environment must be set before ONNX Runtime loads, while the process is single-threaded")]
        unsafe {
            std::env::set_var(TELEMETRY, "1");
        }
    }
}

fn run(cli: Cli, config: hiwar_core::config::Config) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Models { command } => {
            let store = hiwar_core::models::Store::open(&config)?;
            match command {
                ModelsCommand::List => store.list(),
                ModelsCommand::Fetch { names } => store.fetch(&names, &config),
                ModelsCommand::Verify { names } => store.verify(&names),
            }
        }
        Command::Doctor => doctor::run(&config),
        Command::Say { text, lang, out, timeline, clock_log, video, frames, audio, size, fps } => {
            let render = say::VideoArgs { video, frames, size, fps };
            match audio {
                Some(audio) => say::lip_sync_recording(&config, &audio, &render),
                None => say::say(&config, text.as_deref().unwrap_or_default(), &lang, out.as_deref(), timeline.as_deref(), clock_log.as_deref(), &render),
            }
        }
        Command::Stage { kiosk, script, frame_log } => hiwar_stage::window::run(&config, kiosk, script, frame_log),
        Command::Avatar { variant, out } => {
            hiwar_stage::write_avatar(std::path::Path::new("assets/avatar"), variant.as_deref(), out.as_deref()).map(|()| ExitCode::SUCCESS)
        }
        Command::Bench { what: BenchCommand::Asr { model, reps, rounds, only } } => hiwar_bench::asr::asr(&config, model, reps.max(1), rounds, &only),
        Command::Bench { what: BenchCommand::Loop { only, rounds, ttft, interruptions, turns } } => {
            hiwar_bench::live::run(&config, &only, rounds, &ttft, interruptions, turns)
        }
        Command::Bench { what: BenchCommand::Soak { turns, every, no_render, size, json } } => {
            hiwar_bench::soak::run(&config, turns.max(1), every, no_render, size, json)
        }
        Command::Bench { what: BenchCommand::Serve { idle, reps } } => hiwar_bench::serve::run(&config, idle, reps.max(1)),
        Command::Bench { what: BenchCommand::Turn { json } } => hiwar_bench::turn::run(&config, json),
        Command::Bench { what: BenchCommand::Echo { json, sweep, only } } => hiwar_bench::echo::run(&config, json, sweep.map(Into::into), only.map(Into::into)),
        Command::Bench { what: BenchCommand::Tashkeel { golden, only_hiwar, json, show } } => {
            hiwar_bench::tashkeel::run(&config, golden, only_hiwar, json, show)
        }
        Command::Bench { what: BenchCommand::Tts { python, reps, only, accent, sentences, espeak } } => {
            hiwar_bench::speech::tts(&config, &python, reps.max(1), &only, accent.as_deref(), sentences.as_deref(), espeak)
        }
        Command::Bench { what: BenchCommand::Face { frames, size, sync_size, sync_fps, only, timeline } } => {
            hiwar_bench::face::face(&config, &hiwar_bench::face::FaceBench { frames: frames.max(1), size, sync_size, sync_fps, only, timeline })
        }
        Command::Bench { what: BenchCommand::Sync { video, size, fps, json } } => hiwar_bench::face::sync(&video, size, fps, json),
        Command::Bench { what: BenchCommand::Regions { size } } => {
            println!("{}", hiwar_bench::sync::regions(size.0, size.1));
            Ok(ExitCode::SUCCESS)
        }
        Command::Transcribe { files, lang, json, mic } => transcribe::transcribe(&config, &files, &lang, json, mic),
        Command::Demo => demo::run(&config),
        Command::Run { input, events, no_window, kiosk, control } => converse::run(&config, input.as_deref(), events, !no_window, kiosk, control),
        Command::Chat { once, speak, events } => converse::chat(&config, once.as_deref(), speak.as_deref(), events),
        Command::LlmStandin { behaviours, bind } => hiwar_bench::standin::run_cli(&behaviours, &bind),
        Command::Serve { bind } => hiwar_serve::run(&config, bind),
    }
}
