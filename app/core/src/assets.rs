//! Where the bundled assets (avatar, fonts, knowledge sample, web page, clips) are.

use std::path::{Path, PathBuf};

/// The knowledge folder the config names, else the bundled sample.
pub fn knowledge_dir(config: &crate::config::Config) -> PathBuf {
    if config.knowledge.dir.is_empty() { assets_dir().join("knowledge") } else { PathBuf::from(&config.knowledge.dir) }
}

/// The assets folder: `$BEVY_ASSET_ROOT/assets` if set, else the checkout's when run from one,
/// else beside the installed executable (`/usr/bin/hiwar` → `/usr/share/hiwar/assets`), else
/// `./assets`.
pub fn assets_dir() -> PathBuf {
    if let Some(root) = std::env::var_os("BEVY_ASSET_ROOT") {
        return PathBuf::from(root).join("assets");
    }
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("assets");
    if checkout.is_dir() {
        return checkout;
    }
    let installed = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.join("share").join("hiwar").join("assets")));
    installed.filter(|p| p.is_dir()).unwrap_or_else(|| PathBuf::from("assets"))
}
