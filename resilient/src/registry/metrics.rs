//! The registry's side of the `metrics` export.

use crate::metrics::export;

use super::Registry;

impl Registry {
    /// Copies a fresh [`snapshot`](Self::snapshot) into the `metrics` recorder in use (the
    /// global one, or a thread's local one). See the [module](crate::metrics) for the names.
    pub fn export_metrics(&self) {
        export(&self.snapshot());
        // Each family exports itself: it remembers which open keys it listed last time.
        for family in self.families.handles() {
            family.export_metrics();
        }
    }
}
