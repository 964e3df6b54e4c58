//! The resource limiter that enforces [`Limits`] and records which one was hit,
//! so each limit surfaces as its own CNI error code.

use wasmtime::ResourceLimiter;

pub use plan::Limits;

/// A `ResourceLimiter` that denies growth past the limits and remembers what it
/// denied (wasmtime reports a failed grow as a generic trap).
pub(crate) struct GuestLimiter {
    memory_bytes: usize,
    table_elements: usize,
    tables: usize,
    instances: usize,
    pub memory_denied: bool,
    pub tables_denied: bool,
}

impl GuestLimiter {
    pub fn new(limits: &Limits) -> Self {
        GuestLimiter {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            tables: limits.tables,
            instances: limits.instances,
            memory_denied: false,
            tables_denied: false,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_denied = true;
            // Trap instead of returning -1 from memory.grow: a Rust guest aborts on
            // allocation failure anyway, and a trap names the cause precisely.
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes reached",
                self.memory_bytes
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.tables_denied = true;
            return Err(wasmtime::format_err!(
                "table limit of {} elements reached",
                self.table_elements
            ));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.instances
    }
}
