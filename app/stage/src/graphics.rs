//! Which graphics adapter the stage renders with.

/// The adapter the stage would render with: a GPU if there is one, else the first found.
pub fn best_adapter() -> Result<Option<wgpu::AdapterInfo>, String> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    let rt = tokio::runtime::Builder::new_current_thread().build().map_err(|e| format!("cannot start a runtime: {e}"))?;
    let adapters = rt.block_on(instance.enumerate_adapters(backends));
    let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(wgpu::Adapter::get_info).collect();
    Ok(infos.iter().find(|i| matches!(i.device_type, wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu)).or(infos.first()).cloned())
}

/// "NAME via BACKEND (TYPE)", for benchmark reports.
pub fn adapter_summary() -> Option<String> {
    best_adapter().ok().flatten().map(|i| format!("{} via {:?} ({:?})", i.name, i.backend, i.device_type))
}
