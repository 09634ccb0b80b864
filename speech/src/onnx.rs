//! ONNX Runtime, loaded at run time from a shared library (ort's `load-dynamic`).
//!
//! The library comes from the registry's `onnxruntime` wheel, fetched into the model cache by
//! the app; the caller passes its path, so users never set `ORT_DYLIB_PATH` themselves. The
//! library can be loaded once per process; later calls report the first load.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::{Error, Result};

/// What the loaded ONNX Runtime is and can do.
#[derive(Debug, Clone)]
pub struct OnnxRuntimeInfo {
    pub path: PathBuf,
    /// The version the library reports (e.g. `1.32.0`).
    pub version: String,
    /// Execution providers compiled into this library (`CPUExecutionProvider`, `CUDAExecutionProvider`, …).
    pub providers: Vec<String>,
}

struct Loaded {
    info: OnnxRuntimeInfo,
    env: ort::environment::Environment,
}

static LOADED: OnceLock<std::result::Result<Loaded, String>> = OnceLock::new();

/// Loads ONNX Runtime from `path` (once per process) and reports its version and providers.
pub fn load(path: &Path) -> Result<OnnxRuntimeInfo> {
    if !path.exists() {
        return Err(Error::ModelMissing { name: "onnxruntime".into(), path: path.to_path_buf(), fix: "hiwar models fetch onnxruntime".into() });
    }
    let loaded = LOADED.get_or_init(|| {
        // Telemetry off: ONNX Runtime's own default is on, and a privacy-first kiosk sends
        // nothing and keeps no device identifier.
        let env = ort::init_from(path).map_err(|e| e.to_string())?.with_name("hiwar").with_telemetry(false).build().map_err(|e| e.to_string())?;
        let version = library_version(path).unwrap_or_else(|| ort::info().to_string());
        let providers = available_providers().map_err(|e| e.to_string())?;
        Ok(Loaded { info: OnnxRuntimeInfo { path: path.to_path_buf(), version, providers }, env })
    });
    match loaded {
        Ok(l) => Ok(l.info.clone()),
        Err(e) => Err(Error::Onnx(e.clone())),
    }
}

/// Where ONNX models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// CUDA when it loads, else CPU (with a warning).
    Auto,
    /// CUDA; CPU with a warning if the provider fails.
    Cuda,
}

static DEVICE: OnceLock<Device> = OnceLock::new();

/// Chooses where later sessions run (once per process; the first choice stays).
pub fn set_device(device: Device) {
    let _ = DEVICE.set(device);
    if device == Device::Cuda && !cfg!(feature = "cuda") {
        tracing::warn!("voice.device = cuda, but hiwar was built without the `cuda` feature: running on the CPU");
    }
}

static ARENA: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether later sessions allocate from ONNX Runtime's CPU memory arena (the default: the
/// fastest runs; the arena keeps every run's peak). Off, tensors come from the process's
/// allocator and go back after each run: for a server, whose allocator must then keep freed
/// blocks for the next run (`hiwar_core::memory::keep_freed`) or each run faults them in again.
pub fn use_arena(on: bool) {
    ARENA.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn builder(loaded: &Loaded, threads: usize, origin: &Path) -> Result<ort::session::builder::SessionBuilder> {
    let onnx = |e: String| Error::Onnx(format!("{}: {e}", origin.display()));
    let builder = ort::session::Session::builder(&loaded.env)
        .map_err(|e| onnx(e.to_string()))?
        .with_optimization_level(ort::session::builder::GraphOptimizationLevel::All)
        .map_err(|e| onnx(e.to_string()))?
        .with_intra_threads(threads)
        .map_err(|e| onnx(e.to_string()))?;
    // ONNX Runtime's CPU memory arena keeps the peak of every run for the session's life,
    // growing by powers of two (one voice sentence took it to 134 MB). A process that holds
    // memory for weeks across many sessions turns it off (`hiwar serve`: 600–635 MiB with it,
    // ~420 without; docs/benchmarks.md), and the memory pattern planned from it with it.
    let builder = if ARENA.load(std::sync::atomic::Ordering::Relaxed) {
        builder
    } else {
        builder
            .with_memory_pattern(false)
            .map_err(|e| onnx(e.to_string()))?
            .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
            .map_err(|e| onnx(e.to_string()))?
    };
    let device = DEVICE.get().copied().unwrap_or(Device::Cpu);
    #[cfg(feature = "cuda")]
    if device != Device::Cpu {
        if loaded.info.providers.iter().any(|p| p == "CUDAExecutionProvider") {
            // A provider that fails to start (no GPU, missing CUDA libraries) is logged by
            // ONNX Runtime and the session runs on the CPU.
            // cuDNN's default convolution algorithm, no search: the voices' inputs change
            // length with every sentence, and a search runs again for each new shape (on an
            // H100, first audio of a two-chunk sentence: exhaustive 805 ms, heuristic 206 ms,
            // default 126 ms; docs/benchmarks.md).
            let cuda = ort::ep::CUDA::default().with_conv_algorithm_search(ort::ep::cuda::ConvAlgorithmSearch::Default);
            return builder.with_execution_providers([cuda.build()]).map_err(|e| onnx(e.to_string()));
        }
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!("voice.device = {device:?}, but the loaded ONNX Runtime ({}) has no CUDA provider: running on the CPU", loaded.info.path.display())
        });
    }
    let _ = device;
    Ok(builder)
}

/// Opens a model held in memory (e.g. patched at load time) in a session of its own.
pub fn session_from_memory(bytes: &[u8], threads: usize, origin: &Path) -> Result<ort::session::Session> {
    let Some(Ok(loaded)) = LOADED.get() else {
        return Err(Error::Onnx("ONNX Runtime is not loaded yet (hiwar loads it from the model cache)".into()));
    };
    builder(loaded, threads, origin)?.commit_from_memory(bytes).map_err(|e| Error::Onnx(format!("{}: {e}", origin.display())))
}

/// Opens a model in a session of its own (sessions are not shared between threads).
/// ONNX Runtime must have been loaded with [`load`] first.
pub fn session(model: &Path, threads: usize, name: &str) -> Result<ort::session::Session> {
    let Some(Ok(loaded)) = LOADED.get() else {
        return Err(Error::Onnx("ONNX Runtime is not loaded yet (hiwar loads it from the model cache)".into()));
    };
    if !model.is_file() {
        return Err(Error::ModelMissing { name: name.into(), path: model.to_path_buf(), fix: format!("hiwar models fetch {name}") });
    }
    builder(loaded, threads, model)?.commit_from_file(model).map_err(|e| Error::Onnx(format!("{}: {e}", model.display())))
}

/// The version in a versioned library name (`libonnxruntime.so.1.32.0` → `1.32.0`).
fn library_version(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let version = name.split_once(".so.")?.1;
    version.split('.').all(|p| p.parse::<u32>().is_ok()).then(|| version.to_string())
}

/// Asks the loaded library which execution providers it was built with.
#[allow(unsafe_code, reason = "FFI edge: ort exposes no safe list of compiled-in providers")]
fn available_providers() -> std::result::Result<Vec<String>, String> {
    let api = ort::api();
    let mut list: *mut *mut std::ffi::c_char = std::ptr::null_mut();
    let mut count: std::ffi::c_int = 0;
    // SAFETY: both out-pointers are valid for writes; on success ONNX Runtime hands us `count`
    // NUL-terminated strings which we copy and then return with ReleaseAvailableProviders.
    unsafe {
        let status = (api.GetAvailableProviders)(&mut list, &mut count);
        if !status.0.is_null() {
            (api.ReleaseStatus)(status.0);
            return Err("GetAvailableProviders failed".into());
        }
        let mut out = Vec::with_capacity(count.max(0) as usize);
        for i in 0..count.max(0) as usize {
            out.push(CStr::from_ptr(*list.add(i)).to_string_lossy().into_owned());
        }
        let status = (api.ReleaseAvailableProviders)(list, count);
        if !status.0.is_null() {
            (api.ReleaseStatus)(status.0);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_comes_from_the_library_name() {
        assert_eq!(library_version(Path::new("/c/libonnxruntime.so.1.32.0")).as_deref(), Some("1.32.0"));
        assert_eq!(library_version(Path::new("/c/libonnxruntime.so")), None);
    }

    #[test]
    fn a_missing_library_names_the_fetch_command() {
        let err = load(Path::new("/nonexistent/libonnxruntime.so")).expect_err("missing");
        assert!(err.to_string().contains("hiwar models fetch onnxruntime"), "{err}");
    }
}
