//! The call site's `static` and its link-time registration: the settings as a constant
//! `Spec`, the name metrics, configuration and the kill switch find it by, and the
//! `CallSiteInfo` that `Registry::call_sites` and `Registry::validate` read.

use std::time::Duration;

use proc_macro2::{Ident, Span, TokenStream};
use quote::{ToTokens, quote};
use syn::{FnArg, Signature};

use crate::body;
use crate::options::{Jitter, Options, Setting};

/// Whether the call site is named after `Self` on its first call: a method (it has a receiver
/// or names `Self`) without a `name` key. Two types of one module may both have a `get`; the
/// attribute cannot see the impl's type, so the function body supplies it (see
/// `CallSite::name_after` in `resilient::__private`). An associated function that never
/// names `Self` cannot be told from a free function; `Registry::validate` reports it if its
/// name is shared.
pub(crate) fn named_after_self(options: &Options, sig: &Signature) -> bool {
    if options.name.is_some() {
        return false;
    }
    let has_receiver = matches!(sig.inputs.first(), Some(FnArg::Receiver(_)));
    let mentions_self = body::mentions(sig.inputs.to_token_stream(), "Self")
        || body::mentions(sig.output.to_token_stream(), "Self")
        || body::mentions(sig.generics.to_token_stream(), "Self");
    has_receiver || mentions_self
}

/// The call site's name: the `name` key, or the module path and the function's name, with
/// the placeholder `{Self}` before a method's name for its first call to fill in.
fn site_name(options: &Options, sig: &Signature) -> TokenStream {
    if let Some(name) = &options.name {
        let name = &name.value;
        return quote!(#name);
    }
    let function = sig.ident.to_string();
    let function = function.strip_prefix("r#").unwrap_or(&function);
    let suffix = if named_after_self(options, sig) {
        format!("::{{Self}}::{function}")
    } else {
        format!("::{function}")
    };
    quote!(::core::concat!(::core::module_path!(), #suffix))
}

fn optional_text(value: Option<&Setting<String>>) -> TokenStream {
    value.map_or_else(
        || quote!(::core::option::Option::None),
        |value| {
            let value = &value.value;
            quote!(::core::option::Option::Some(#value))
        },
    )
}

fn optional_duration(value: Option<&Setting<Duration>>) -> TokenStream {
    value.map_or_else(
        || quote!(::core::option::Option::None),
        |value| {
            let secs = grouped(value.value.as_secs());
            let nanos = grouped(u64::from(value.value.subsec_nanos()));
            quote!(::core::option::Option::Some(::resilient::__private::Duration::new(#secs, #nanos)))
        },
    )
}

/// Registers the call site at link time, so the registry can list and validate every
/// annotated function before any has run.
pub(crate) fn registration(options: &Options, sig: &Signature, site: &Ident) -> TokenStream {
    let name = site_name(options, sig);
    let named = if named_after_self(options, sig) {
        quote!(::core::option::Option::Some(#site.named()))
    } else {
        quote!(::core::option::Option::None)
    };
    let breaker = optional_text(options.plain_breaker());
    let bulkhead = optional_text(options.bulkhead.as_ref());
    let written = &options.written;
    let family = options
        .breaker_key
        .as_ref()
        .and(options.breaker.as_ref())
        .map(|family| {
            let family = &family.value;
            quote!(.with_breaker_family(#family))
        });
    quote! {
        ::resilient::__private::inventory::submit! {
            ::resilient::__private::CallSiteInfo::new(
                #name,
                #breaker,
                #bulkhead,
                #written,
                ::core::file!(),
                ::core::line!(),
                #named,
            )#family
        }
    }
}

/// The call site's settings, as a constant expression.
pub(crate) fn spec(options: &Options, sig: &Signature) -> TokenStream {
    let name = site_name(options, sig);
    let jitter = match options.jitter.as_ref().map(|jitter| jitter.value) {
        None => quote!(::core::option::Option::None),
        Some(jitter) => {
            let variant = match jitter {
                Jitter::None => quote!(None),
                Jitter::Full => quote!(Full),
                Jitter::Equal => quote!(Equal),
                Jitter::Decorrelated => quote!(Decorrelated),
            };
            quote!(::core::option::Option::Some(::resilient::__private::Jitter::#variant))
        }
    };
    let breaker = optional_text(options.plain_breaker());
    let bulkhead = optional_text(options.bulkhead.as_ref());
    let timeout = optional_duration(options.timeout.as_ref());
    let total_timeout = optional_duration(options.total_timeout.as_ref());
    let backoff = optional_duration(options.backoff.as_ref());
    let max_backoff = optional_duration(options.max_backoff.as_ref());
    let retries = grouped(u64::from(options.retries()));
    let hedge = optional_duration(options.hedge.as_ref());
    let hedges = grouped(u64::from(
        options.hedges.as_ref().map_or(1, |hedges| hedges.value),
    ));
    let cache = optional_duration(options.cache.as_ref());
    let cache_capacity = match &options.cache_capacity {
        None => quote!(::core::option::Option::None),
        Some(capacity) => {
            let capacity = grouped(capacity.value as u64);
            quote!(::core::option::Option::Some(#capacity))
        }
    };
    quote! {
        ::resilient::__private::Spec {
            name: #name,
            breaker: #breaker,
            bulkhead: #bulkhead,
            timeout: #timeout,
            total_timeout: #total_timeout,
            retries: #retries,
            backoff: #backoff,
            max_backoff: #max_backoff,
            jitter: #jitter,
            hedge: #hedge,
            hedges: #hedges,
            cache: #cache,
            cache_capacity: #cache_capacity,
        }
    }
}

/// An integer literal with `_` every three digits, as clippy's `unreadable_literal` wants.
pub(crate) fn grouped(value: u64) -> syn::LitInt {
    let digits = value.to_string();
    let mut text = String::with_capacity(digits.len() * 4 / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push('_');
        }
        text.push(digit);
    }
    syn::LitInt::new(&text, Span::call_site())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_digits_by_three() {
        assert_eq!(grouped(5).to_string(), "5");
        assert_eq!(grouped(1000).to_string(), "1_000");
        assert_eq!(grouped(500_000_000).to_string(), "500_000_000");
    }

    #[test]
    fn methods_get_the_self_placeholder_unless_named() {
        let options = |args| Options::parse(args).unwrap();
        let name = |args, sig: Signature| site_name(&options(args), &sig).to_string();
        let method: Signature = syn::parse_quote!(async fn get(&self) -> Result<u8, E>);
        let constructor: Signature = syn::parse_quote!(async fn load() -> Result<Self, E>);
        let free: Signature = syn::parse_quote!(async fn get() -> Result<u8, E>);
        assert!(name(quote!(retries = 1), method.clone()).contains("\"::{Self}::get\""));
        assert!(name(quote!(retries = 1), constructor).contains("\"::{Self}::load\""));
        assert!(name(quote!(retries = 1), free).contains("\"::get\""));
        assert_eq!(name(quote!(name = "x"), method), "\"x\"");
    }
}
