//! Audio devices through cpal (ALSA on Linux).

use cpal::traits::{DeviceTrait, HostTrait};

/// What the audio host offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioDevices {
    pub host: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub default_input: Option<String>,
    pub default_output: Option<String>,
}

fn describe(device: &cpal::Device) -> String {
    device.description().map_or_else(|e| format!("(unnamed device: {e})"), |d| d.name().to_string())
}

/// Lists the default host's input and output devices. Never panics: a host without devices
/// gives empty lists.
pub fn list_devices() -> AudioDevices {
    let host = cpal::default_host();
    AudioDevices {
        host: host.id().name().to_string(),
        inputs: host.input_devices().map(|it| it.map(|d| describe(&d)).collect()).unwrap_or_default(),
        outputs: host.output_devices().map(|it| it.map(|d| describe(&d)).collect()).unwrap_or_default(),
        default_input: host.default_input_device().map(|d| describe(&d)),
        default_output: host.default_output_device().map(|d| describe(&d)),
    }
}
