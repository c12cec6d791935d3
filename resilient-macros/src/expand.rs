//! The expansion: the signature stays as written (save a `mut` moved onto a per-attempt copy)
//! and the body runs inside an attempt loop over the runtime's step-wise driver.
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
//! arguments move into it. The body is an `async move` block of its own, so `?` and `return`
//! end one attempt, and the block owns what it uses (per-attempt copies, re-borrows), so it is
//! `Send` whenever the original function's future is.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::visit_mut::VisitMut;
use syn::{
    Block, Expr, ExprAsync, ExprPath, FnArg, GenericArgument, Ident, ItemFn, Pat, PatIdent,
    PathArguments, Receiver, ReturnType, Signature, Stmt, Type, TypeParamBound,
};

use crate::body;
use crate::diagnose;
use crate::krate;
use crate::options::Options;
use crate::site::{named_after_self, registration, spec};

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

/// Refuses return types that cannot be a `Result` whatever they alias, so the common mistake
/// gets one error; any other type is checked by the compiler, at the return type.
fn check_return_type(ret: &Type) -> syn::Result<()> {
    let not_result = match ret {
        Type::Paren(inner) => return check_return_type(&inner.elem),
        Type::Group(inner) => return check_return_type(&inner.elem),
        Type::Path(path) if path.qself.is_none() => path.path.segments.last().is_some_and(|last| {
            const NOT_RESULTS: &[&str] = &[
                "Option", "Vec", "String", "Box", "bool", "char", "str", "u8", "u16", "u32", "u64",
                "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32", "f64",
                "HashMap", "BTreeMap", "HashSet", "BTreeSet", "Poll",
            ];
            NOT_RESULTS.iter().any(|name| last.ident == name)
        }),
        Type::Path(_) | Type::Verbatim(_) | Type::Macro(_) | Type::Infer(_) => false,
        _ => true,
    };
    if not_result {
        return Err(syn::Error::new_spanned(
            ret,
            "a `#[resilient]` function must return `Result<T, E>` (aliases such as `std::io::Result<T>` are fine): its failures and rejections are returned as `Err`",
        ));
    }
    Ok(())
}

fn empty_block() -> Block {
    Block {
        brace_token: syn::token::Brace::default(),
        stmts: Vec::new(),
    }
}

/// The last statement of an `#[async_trait]` method body, `Box::pin(async move { .. })`.
fn async_trait_block(block: &mut Block) -> Option<&mut ExprAsync> {
    let Some(Stmt::Expr(Expr::Call(call), None)) = block.stmts.last_mut() else {
        return None;
    };
    let Expr::Path(ExprPath { path, .. }) = &*call.func else {
        return None;
    };
    let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    if !names.ends_with(&["Box".to_owned(), "pin".to_owned()]) || call.args.len() != 1 {
        return None;
    }
    match call.args.first_mut() {
        Some(Expr::Async(inner)) if inner.capture.is_some() => Some(inner),
        _ => None,
    }
}

/// `T` in `Pin<Box<dyn Future<Output = T> + Send + '_>>`, the return type `#[async_trait]`
/// writes.
fn future_output(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Paren(inner) => future_output(&inner.elem),
        Type::Group(inner) => future_output(&inner.elem),
        Type::TraitObject(object) => bounds_output(object.bounds.iter()),
        Type::ImplTrait(opaque) => bounds_output(opaque.bounds.iter()),
        Type::Path(path) => path.path.segments.iter().find_map(|segment| {
            let PathArguments::AngleBracketed(args) = &segment.arguments else {
                return None;
            };
            args.args.iter().find_map(|arg| match arg {
                GenericArgument::Type(inner) => future_output(inner),
                _ => None,
            })
        }),
        _ => None,
    }
}

fn bounds_output<'a>(mut bounds: impl Iterator<Item = &'a TypeParamBound>) -> Option<&'a Type> {
    bounds.find_map(|bound| {
        let TypeParamBound::Trait(bound) = bound else {
            return None;
        };
        let last = bound.path.segments.last()?;
        if last.ident != "Future" {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
            _ => None,
        })
    })
}

/// How an attempt gets an argument the body mentions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// A shared reference: each attempt copies it.
    Copy,
    /// `&mut`: each attempt re-borrows it.
    Reborrow,
    /// By value: each attempt clones it, when the original is needed again.
    Clone,
}

fn access_of(ty: &Type) -> Access {
    match ty {
        Type::Reference(reference) if reference.mutability.is_some() => Access::Reborrow,
        Type::Reference(_) => Access::Copy,
        Type::Paren(inner) => access_of(&inner.elem),
        Type::Group(inner) => access_of(&inner.elem),
        _ => Access::Clone,
    }
}

/// What the attempts and the fallback get from the function's arguments.
struct Arguments {
    /// Statements run before each attempt: its own copy or re-borrow of each argument the body
    /// mentions, when the original is needed afterwards.
    copies: Vec<TokenStream>,
    /// The arguments handed to the fallback, receiver first.
    passed: Vec<TokenStream>,
    /// Each named argument as an owned value, for the cache's default key.
    owned: Vec<TokenStream>,
}

impl Arguments {
    /// Reads the signature; takes `mut` off arguments whose copy becomes the mutable binding,
    /// and renames `self` in `body` when each attempt needs its own receiver.
    fn of(options: &Options, sig: &mut Signature, body: &mut Block) -> syn::Result<Self> {
        // The originals are needed after an attempt when there may be another attempt, or a
        // fallback to hand them to; otherwise the single attempt takes them.
        let keep_originals =
            options.retries() > 0 || options.fallback.is_some() || options.hedged();
        let mentioned = body.to_token_stream();
        let fallback = options.fallback.as_ref().map(|fallback| fallback.span);
        let mut arguments = Arguments {
            copies: Vec::new(),
            passed: Vec::new(),
            owned: Vec::new(),
        };
        let default_key = options.cache.is_some() && options.cache_key.is_none();
        let mut errors: Option<syn::Error> = None;
        for input in &mut sig.inputs {
            match input {
                FnArg::Receiver(receiver) => {
                    arguments
                        .passed
                        .push(at(receiver.self_token.to_token_stream(), fallback));
                    if keep_originals && body::mentions(mentioned.clone(), "self") {
                        if options.hedged() && access_of(&receiver.ty) == Access::Reborrow {
                            combine(&mut errors, shared_by_hedges(&*receiver));
                            continue;
                        }
                        arguments.copies.extend(receiver_copy(receiver, body));
                    }
                }
                FnArg::Typed(typed) => match &mut *typed.pat {
                    Pat::Ident(binding) if binding.subpat.is_none() => {
                        arguments
                            .passed
                            .push(at(binding.ident.to_token_stream(), fallback));
                        let access = match (&binding.by_ref, &binding.mutability) {
                            (Some(_), Some(_)) => Access::Reborrow,
                            (Some(_), None) => Access::Copy,
                            (None, _) => access_of(&typed.ty),
                        };
                        if default_key {
                            arguments.owned.push(owned_key_part(&binding.ident, access));
                        }
                        let mentioned_here =
                            body::mentions(mentioned.clone(), &binding.ident.to_string());
                        if options.hedged() && access == Access::Reborrow && mentioned_here {
                            combine(&mut errors, shared_by_hedges(&*typed));
                            continue;
                        }
                        if keep_originals && access != Access::Copy && mentioned_here {
                            arguments
                                .copies
                                .push(copy(binding, access, Some(&typed.ty)));
                        }
                    }
                    pattern if default_key => combine(
                        &mut errors,
                        syn::Error::new_spanned(
                            &*pattern,
                            "`cache` keys its values by the arguments, so each needs a name: write `name: Type` here, or give the key yourself with `cache_key = <expression>`",
                        ),
                    ),
                    pattern if options.fallback.is_some() => combine(
                        &mut errors,
                        syn::Error::new_spanned(
                            &*pattern,
                            "`fallback` is called with every argument, so each needs a name: write `name: Type` here and destructure `name` in the body",
                        ),
                    ),
                    pattern if options.retries() > 0 || options.hedged() => Bindings {
                        mentioned: &mentioned,
                        copies: &mut arguments.copies,
                    }
                    .visit_pat_mut(pattern),
                    _ => {}
                },
            }
        }
        errors.map_or(Ok(arguments), Err)
    }
}

/// An argument as an owned value (`str` becomes `String`), for the cache's default key.
fn owned_key_part(ident: &Ident, access: Access) -> TokenStream {
    let span = ident.span();
    match access {
        Access::Copy | Access::Reborrow => {
            quote_spanned!(span=> ::resilient::__private::owned(#ident))
        }
        Access::Clone => quote_spanned!(span=> ::resilient::__private::owned(&#ident)),
    }
}

/// A `&mut` argument of a hedged function: its attempts run side by side.
fn shared_by_hedges(argument: &dyn ToTokens) -> syn::Error {
    syn::Error::new_spanned(
        argument,
        "`hedge` runs attempts side by side, so each needs its own copy of this argument, and a `&mut` cannot be shared: take it by value (a `Clone` type) or by shared reference, or remove `hedge`",
    )
}

/// The per-attempt receiver, `__resilient_self`, which `body` is renamed to use (a
/// `let self = …` is not allowed).
fn receiver_copy(receiver: &mut Receiver, body: &mut Block) -> Option<TokenStream> {
    let access = access_of(&receiver.ty);
    if access == Access::Copy {
        return None;
    }
    let span = receiver.self_token.span;
    let renamed = body::renamed_self(span);
    // In `&mut self` the `mut` belongs to the reference, not to the binding.
    let mutability = match receiver.reference {
        None => receiver.mutability.take(),
        Some(_) => None,
    };
    let self_token = receiver.self_token;
    body::rename_self(body);
    Some(if access == Access::Reborrow {
        quote_spanned!(span=> let #mutability #renamed = &mut *#self_token;)
    } else {
        let ty = relocate(erase_impl_trait(&receiver.ty).into_token_stream(), span);
        quote_spanned!(span=>
            let #mutability #renamed = ::resilient::__private::clone_arg::<#ty>(&#self_token);
        )
    })
}

/// The per-attempt copy of an argument bound by name; the `mut` moves onto the copy, which is
/// the binding the body mutates. The type, when known, keeps rustc from suggesting a borrow
/// in the signature when the type is not `Clone`.
fn copy(binding: &mut PatIdent, access: Access, ty: Option<&Type>) -> TokenStream {
    let ident = &binding.ident;
    let mutability = binding.mutability.take();
    let span = ident.span();
    if access == Access::Reborrow {
        return quote_spanned!(span=> let #mutability #ident = &mut *#ident;);
    }
    // Located at the argument's name, so "not `Clone`" underlines the name.
    let ty = ty.map_or_else(
        || quote!(_),
        |ty| relocate(erase_impl_trait(ty).into_token_stream(), span),
    );
    quote_spanned!(span=>
        let #mutability #ident = ::resilient::__private::clone_arg::<#ty>(&#ident);
    )
}

/// Collects per-attempt clones of the by-value bindings of a destructuring pattern that the
/// body mentions.
struct Bindings<'a> {
    mentioned: &'a TokenStream,
    copies: &'a mut Vec<TokenStream>,
}

impl VisitMut for Bindings<'_> {
    fn visit_pat_ident_mut(&mut self, binding: &mut PatIdent) {
        if binding.by_ref.is_none()
            && body::mentions(self.mentioned.clone(), &binding.ident.to_string())
        {
            self.copies.push(copy(binding, Access::Clone, None));
        }
        syn::visit_mut::visit_pat_ident_mut(self, binding);
    }
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

/// The loop over attempts, retrying while the runtime says so.
fn retry_loop(options: &Options, run: &Ident, attempt: &TokenStream) -> TokenStream {
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

/// The cache around `calls`: the key is taken before any argument moves into an attempt, a
/// success is stored under it, and a failed call is answered with the value stored under it
/// while it is fresh enough (before any fallback).
fn cached(
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

/// The loop over hedged attempts: `make` builds each attempt, hedges included, so each owns
/// its copies of the arguments.
fn hedged_loop(options: &Options, run: &Ident, make: &TokenStream) -> TokenStream {
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

/// In a method, a bare name means a method of `Self` (resilience4j's `fallbackMethod`, and
/// what a reader expects); a free function there is written as a path, `self::cached`.
fn fallback_path(path: &ExprPath, sig: &Signature) -> ExprPath {
    let has_receiver = matches!(sig.inputs.first(), Some(FnArg::Receiver(_)));
    let bare = path.qself.is_none() && path.path.get_ident().is_some();
    if !(has_receiver && bare) {
        return path.clone();
    }
    let ident = &path.path.segments[0].ident;
    let self_type = Ident::new("Self", ident.span());
    syn::parse_quote!(#self_type::#ident)
}

fn combine(errors: &mut Option<syn::Error>, error: syn::Error) {
    match errors {
        Some(existing) => existing.combine(error),
        None => *errors = Some(error),
    }
}

/// `tokens` re-located at `span`, when there is one.
///
/// They resolve as written at the attribute (as the parameters do), and count as generated:
/// rustc then reports a wrong fallback signature at the path without suggesting edits of the
/// generated call.
fn at(tokens: TokenStream, span: Option<Span>) -> TokenStream {
    let Some(span) = span else {
        return tokens;
    };
    tokens
        .into_iter()
        .map(|mut token| {
            token.set_span(Span::call_site().located_at(span));
            token
        })
        .collect()
}

/// `tokens`, keeping how they resolve, shown at `span`.
fn relocate(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), relocate(group.stream(), span));
                inner.set_span(group.span().located_at(span));
                token = proc_macro2::TokenTree::Group(inner);
            } else {
                token.set_span(token.span().located_at(span));
            }
            token
        })
        .collect()
}

fn first_last_spans(tokens: TokenStream) -> (Span, Span) {
    let mut tokens = tokens.into_iter();
    let first = tokens.next().map_or_else(Span::call_site, |t| t.span());
    let last = tokens.last().map_or(first, |t| t.span());
    (first, last)
}

/// Pins the attempt block's output to the declared return type before the body is checked,
/// so `?` converts into it and a wrong tail expression is reported in the body.
fn fake_return(ret: &Type) -> TokenStream {
    let (span, _) = first_last_spans(ret.to_token_stream());
    let ret = erase_impl_trait(ret);
    quote_spanned! {span=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::let_with_type_underscore,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let __resilient_fake_return: #ret = loop {};
            return __resilient_fake_return;
        }
    }
}

/// `impl Trait` cannot be named in a `let`; `_` lets inference fill it.
fn erase_impl_trait(ret: &Type) -> Type {
    struct Erase;
    impl VisitMut for Erase {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if let Type::ImplTrait(opaque) = ty {
                *ty = Type::Infer(syn::TypeInfer {
                    underscore_token: syn::Token![_](opaque.impl_token.span),
                });
                return;
            }
            syn::visit_mut::visit_type_mut(self, ty);
        }
    }
    let mut ret = ret.clone();
    Erase.visit_type_mut(&mut ret);
    ret
}

/// Whether an error is worth another attempt.
fn classify(options: &Options, error: &Ident) -> TokenStream {
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

/// On `Err`, the fallback with the arguments and the error, awaited if it is `async`.
fn call_fallback(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_output_of_an_async_trait_return_type() {
        let ty: Type = syn::parse_quote!(
            ::core::pin::Pin<
                Box<dyn ::core::future::Future<Output = Result<u8, E>> + Send + 'async_trait>,
            >
        );
        let output = future_output(&ty).unwrap();
        assert_eq!(output.to_token_stream().to_string(), "Result < u8 , E >");
    }

    #[test]
    fn erases_impl_trait() {
        let ty: Type = syn::parse_quote!(Result<impl Display, E>);
        assert_eq!(
            erase_impl_trait(&ty).to_token_stream().to_string(),
            "Result < _ , E >"
        );
    }
}
