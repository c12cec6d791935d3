//! The calls around the body: the retry loop, hedged attempts, the stale-while-failing cache,
//! the classification of an error, and the fallback.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::{ExprPath, FnArg, Ident, Signature};

use crate::options::Options;

use super::arguments::Arguments;
use super::spans::first_last_spans;

/// The loop over attempts, retrying while the runtime says so.
pub(super) fn retry_loop(options: &Options, run: &Ident, attempt: &TokenStream) -> TokenStream {
    let outcome = Ident::new("__resilient_attempt", Span::mixed_site());
    let result = Ident::new("__resilient_result", Span::mixed_site());
    let error = Ident::new("__resilient_error", Span::mixed_site());
    let classify = classify(options, &error);
    quote! {
        loop {
            let #outcome = #run.attempt(#attempt).await;
            if let ::resilient::__private::Next::Return(#result) =
                #run.next(#outcome, |#error| #classify).await
            {
                break #result;
            }
        }
    }
}

/// The loop over hedged attempts: `make` builds each attempt, hedges included, so each owns
/// its copies of the arguments.
pub(super) fn hedged_loop(options: &Options, run: &Ident, make: &TokenStream) -> TokenStream {
    let maker = Ident::new("__resilient_make", Span::mixed_site());
    let outcome = Ident::new("__resilient_attempt", Span::mixed_site());
    let result = Ident::new("__resilient_result", Span::mixed_site());
    let error = Ident::new("__resilient_error", Span::mixed_site());
    let classify = classify(options, &error);
    quote! {{
        let mut #maker = #make;
        loop {
            let #outcome = #run.attempt_with(&mut #maker).await;
            if let ::resilient::__private::Next::Return(#result) =
                #run.next(#outcome, |#error| #classify).await
            {
                break #result;
            }
        }
    }}
}

/// The cache around `calls`: the key is taken before any argument moves into an attempt, a
/// success is stored under it, and a failed call is answered with the value stored under it
/// while it is fresh enough (before any fallback).
pub(super) fn cached(
    options: &Options,
    run: &Ident,
    arguments: &Arguments,
    calls: TokenStream,
) -> (Option<TokenStream>, TokenStream) {
    let key = Ident::new("__resilient_cache_key", Span::mixed_site());
    let result = Ident::new("__resilient_result", Span::mixed_site());
    let value = Ident::new("__resilient_value", Span::mixed_site());
    let error = Ident::new("__resilient_error", Span::mixed_site());
    let key_value = match &options.cache_key {
        Some(given) => {
            let expr = &given.value;
            quote_spanned!(given.span=> ::resilient::__private::owned(&(#expr)))
        }
        None => {
            let parts = &arguments.owned;
            quote!((#(#parts,)*))
        }
    };
    let transient = classify(options, &error);
    let statement = quote!(let #key = #key_value;);
    let calls = quote! {{
        let #result = #calls;
        match #result {
            ::core::result::Result::Ok(#value) => {
                #run.cache_store(#key, &#value);
                ::core::result::Result::Ok(#value)
            }
            ::core::result::Result::Err(#error) => {
                let transient = {
                    let #error = &#error;
                    (#transient).transient
                };
                match #run.cache_serve(&#key, transient) {
                    ::core::option::Option::Some(#value) => ::core::result::Result::Ok(#value),
                    ::core::option::Option::None => ::core::result::Result::Err(#error),
                }
            }
        }
    }};
    (Some(statement), calls)
}

/// Whether an error is worth another attempt.
pub(super) fn classify(options: &Options, error: &Ident) -> TokenStream {
    let base = quote! {{
        use ::resilient::__private::{ClassifyAny as _, ClassifyTransient as _};
        (&::resilient::__private::Classify(#error)).__resilient_classify()
    }};
    let Some(predicate) = &options.retry_if else {
        return base;
    };
    // Spanned at the path, the error first: a predicate of the wrong type is reported there.
    let path = &predicate.value;
    let (first, last) = first_last_spans(path.to_token_stream());
    let function = quote_spanned!(first=> ::resilient::__private::retry_if);
    let error = Ident::new("__resilient_error", error.span().located_at(first));
    quote_spanned!(last=> #function(#error, #base, #path))
}

/// In a method, a bare name means a method of `Self` (resilience4j's `fallbackMethod`, and
/// what a reader expects); a free function there is written as a path, `self::cached`.
pub(super) fn fallback_path(path: &ExprPath, sig: &Signature) -> ExprPath {
    let has_receiver = matches!(sig.inputs.first(), Some(FnArg::Receiver(_)));
    let bare = path.qself.is_none() && path.path.get_ident().is_some();
    if !(has_receiver && bare) {
        return path.clone();
    }
    let ident = &path.path.segments[0].ident;
    let self_type = Ident::new("Self", ident.span());
    syn::parse_quote!(#self_type::#ident)
}

/// On `Err`, the fallback with the arguments and the error, awaited if it is `async`.
pub(super) fn call_fallback(
    run: &Ident,
    calls: &TokenStream,
    path: &ExprPath,
    args: &[TokenStream],
) -> TokenStream {
    let result = Ident::new("__resilient_result", Span::mixed_site());
    let (first, last) = first_last_spans(path.to_token_stream());
    let error = Ident::new("__resilient_error", Span::mixed_site().located_at(last));
    let value = Ident::new("__resilient_fallback", Span::mixed_site().located_at(first));
    let call_args = quote_spanned!(last=> (#(#args,)* #error));
    let awaited = quote_spanned!(last=> .await);
    quote! {
        let #result = #calls;
        let #error = match #result {
            ::core::result::Result::Err(#error) => #error,
            #result => return #result,
        };
        #run.fallback_served();
        let #value = {
            use ::resilient::__private::{FallbackIsFuture as _, FallbackIsValue as _};
            let #value = #path #call_args;
            (&#value).__resilient_fallback_kind().resolve(#value)
        };
        #value #awaited
    }
}
