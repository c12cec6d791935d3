//! The expansion: the signature stays as written (save a `mut` moved onto a per-attempt copy)
//! and the body runs inside an attempt loop over the runtime's driver. `signature` reads the
//! return type, `arguments` what each attempt gets from the arguments, `calls` writes the loops,
//! the cache and the fallback around the body, `spans` places what they generate.
//!
//! ```text
//! async fn price(&self, sku: &str) -> Result<Price, PricingError> {
//!     static __RESILIENT_SITE: CallSite = CallSite::new(Spec { .. });   // policy built once
//!     inventory::submit!(CallSiteInfo::new(..));                        // listed at link time
//!     let mut run = start(&__RESILIENT_SITE, PhantomData::<Result<Price, PricingError>>);
//!     let result = loop {
//!         let attempt = run.attempt({ /* per-attempt copies */ async move { <body> } }).await;
//!         if let Next::Return(result) = run.next(attempt, |e| <classify e>).await {
//!             break result;
//!         }
//!     };
//!     <fallback on Err>
//! }
//! ```
//!
//! Without `retries` there is no loop: `run.once(..)` makes the single attempt, and by-value
//! arguments move into it. With `hedge`, a closure builds each attempt (`run.attempt_with`), so
//! that hedges can run side by side. The body is an `async move` block of its own, so `?` and
//! `return` end one attempt, and the block owns what it uses (per-attempt copies, re-borrows),
//! so it is `Send` whenever the original function's future is.

mod arguments;
mod calls;
mod signature;
mod spans;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::{Block, Expr, Ident, ItemFn, ReturnType, Signature, Stmt, Type};

use crate::diagnose;
use crate::krate;
use crate::options::Options;
use crate::site::{named_after_self, registration, spec};

use self::arguments::Arguments;
use self::calls::{cached, call_fallback, fallback_path, hedged_loop, retry_loop};
use self::signature::{
    async_trait_block, check_return_type, empty_block, erase_impl_trait, fake_return, future_output,
};
use self::spans::first_last_spans;

/// Expands `function` under `options`.
pub(crate) fn expand(options: &Options, mut function: ItemFn) -> syn::Result<TokenStream> {
    diagnose::check(options, &function)?;
    if function.sig.asyncness.is_some() {
        let ReturnType::Type(_, ret) = &function.sig.output else {
            return Err(syn::Error::new_spanned(
                &function.sig.ident,
                "a `#[resilient]` function must return `Result<T, E>`; this one returns `()`",
            ));
        };
        let ret = (**ret).clone();
        check_return_type(&ret)?;
        let user_block = std::mem::replace(&mut *function.block, empty_block());
        let generated = wrap(options, &mut function.sig, user_block, &ret)?;
        function.block.stmts = vec![Stmt::Expr(Expr::Verbatim(generated), None)];
        return Ok(function.into_token_stream());
    }
    let output = match &function.sig.output {
        ReturnType::Type(_, ret) => future_output(ret).cloned(),
        ReturnType::Default => None,
    };
    if let (Some(ret), Some(inner)) = (output, async_trait_block(&mut function.block)) {
        check_return_type(&ret)?;
        // `#[async_trait]` expanded first: the body is `Box::pin(async move { .. })`, and that
        // inner block is the body to wrap.
        let user_block = std::mem::replace(&mut inner.block, empty_block());
        let generated = wrap(options, &mut function.sig, user_block, &ret)?;
        inner.block.stmts = vec![Stmt::Expr(Expr::Verbatim(generated), None)];
        return Ok(function.into_token_stream());
    }
    if let Some(error) = diagnose::expanded_by_tokio(&function) {
        return Err(error);
    }
    Err(syn::Error::new_spanned(
        function.sig.fn_token,
        "`#[resilient]` needs an `async fn`: write `async fn` (retries, timeouts and backoff wait, and only an async fn can wait without blocking its thread)",
    ))
}

/// The generated body: the call site, the attempt loop around `body`, the fallback.
fn wrap(
    options: &Options,
    sig: &mut Signature,
    mut body: Block,
    ret: &Type,
) -> syn::Result<TokenStream> {
    let arguments = Arguments::of(options, sig, &mut body)?;
    mark_braces_generated(&mut body);
    let site = Ident::new("__RESILIENT_SITE", Span::call_site());
    let run = Ident::new("__resilient_run", Span::mixed_site());
    let spec = spec(options, sig);
    let start = start(&site, ret);
    let copies = &arguments.copies;
    let fake_return = fake_return(ret);
    let attempt = quote! {
        {
            #(#copies)*
            async move {
                #fake_return
                #body
            }
        }
    };
    let calls = if options.hedged() {
        let make = quote! {
            || {
                #(#copies)*
                async move {
                    #fake_return
                    #body
                }
            }
        };
        hedged_loop(options, &run, &make)
    } else if options.retries() > 0 {
        retry_loop(options, &run, &attempt)
    } else {
        // A closure that makes the attempt, rather than the attempt itself: the attempt's future
        // is then built in place inside `once`'s, where passing it would copy it right after
        // writing it (a stalled store-to-load forward on every call).
        let make = quote! {
            {
                #(#copies)*
                move || async move {
                    #fake_return
                    #body
                }
            }
        };
        quote!(#run.once(#make).await)
    };
    let (cache_key, calls) = match &options.cache {
        None => (None, calls),
        Some(_) => cached(options, &run, &arguments, calls),
    };
    let finish = match &options.fallback {
        None => calls,
        Some(fallback) => {
            let path = fallback_path(&fallback.value, sig);
            call_fallback(&run, &calls, &path, &arguments.passed)
        }
    };
    let use_key = use_key(options, &run);
    let idempotency_key = options.idempotency_key.as_ref().map(|key| {
        let value = &key.value;
        quote_spanned!(key.span=> #run.use_idempotency_key(#value);)
    });
    let named_after_self = named_after_self(options, sig);
    let registration = registration(options, sig, &site);
    let name_after = named_after_self.then(|| {
        let self_type = Ident::new("Self", Span::call_site());
        quote!(#site.name_after(::core::any::type_name::<#self_type>);)
    });
    let generated = quote! {
        static #site: ::resilient::__private::CallSite =
            ::resilient::__private::CallSite::new(#spec);
        #registration
        #name_after
        let mut #run = #start;
        #use_key
        #idempotency_key
        #cache_key
        #finish
    };
    Ok(match &options.krate {
        Some(path) => krate::through(&path.value, generated),
        None => generated,
    })
}

/// With `breaker_key`, the key is evaluated once per call, before any argument moves into an
/// attempt, and picks this call's breaker in the family.
fn use_key(options: &Options, run: &Ident) -> Option<TokenStream> {
    let key = options.breaker_key.as_ref()?;
    let family = &options.breaker.as_ref()?.value;
    let value = &key.value;
    Some(quote_spanned!(key.span=> #run.use_key(#family, &(#value));))
}

/// The user's block is the tail of the attempt's `async` block; with its braces written by the
/// user, rustc's `unused_braces` fires on a one-line body (`{ Ok(1) }`) and suggests removing
/// them, which does not compile. Braces resolve no names, so only the lint sees the change;
/// they keep their place for diagnostics.
fn mark_braces_generated(body: &mut Block) {
    let span = body.brace_token.span.join();
    body.brace_token = syn::token::Brace(Span::mixed_site().located_at(span));
}

/// `start(&SITE, PhantomData::<Ret>)`, written with the return type's span from its first to
/// its last token, so a type error about it underlines the return type, once.
fn start(site: &Ident, ret: &Type) -> TokenStream {
    let (first, last) = first_last_spans(ret.to_token_stream());
    let ret = erase_impl_trait(ret);
    let path = quote_spanned!(first=> ::resilient::__private::);
    let function = Ident::new("start", last);
    let marker = quote_spanned!(first=> ::core::marker::PhantomData::<);
    let close = quote_spanned!(last=> >);
    let args = quote_spanned!(last=> (&#site, #marker #ret #close));
    quote!(#path #function #args)
}
