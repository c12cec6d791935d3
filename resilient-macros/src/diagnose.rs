//! Mistakes the macro can see in the function as written, reported once at the token they are
//! about, where the compiler would report them at the attribute, several times over, or with a
//! suggestion that cannot work.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{
    Attribute, FnArg, GenericArgument, GenericParam, Ident, ItemFn, PathArguments, ReturnType,
    Signature, Type, TypeParamBound, WherePredicate,
};

use crate::options::Options;

/// Every problem found in `function` under `options`, combined; `Ok` when there is none.
pub(crate) fn check(options: &Options, function: &ItemFn) -> syn::Result<()> {
    let mut errors: Option<syn::Error> = None;
    let mut push = |error: syn::Error| match &mut errors {
        Some(existing) => existing.combine(error),
        None => errors = Some(error),
    };
    if let Some(error) = repeated(&function.attrs) {
        push(error);
    }
    if let Some(error_type) = error_type(&function.sig) {
        if let Some(error) = foreign_error(error_type) {
            push(error);
        }
        if let Some(error) = generic_error_not_static(&function.sig, error_type) {
            push(error);
        }
    }
    if let Some(error) = borrow_from_mut_self(options, &function.sig) {
        push(error);
    }
    errors.map_or(Ok(()), Err)
}

/// A second `#[resilient]` below this one: each would run the other's whole loop per attempt.
fn repeated(attrs: &[Attribute]) -> Option<syn::Error> {
    let second = attrs.iter().find(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|last| last.ident == "resilient")
    })?;
    Some(syn::Error::new_spanned(
        second,
        "`#[resilient]` is written twice on this function: the outer one would run the inner one's whole attempt loop on every attempt (`retries = 3` on each makes 16 calls); merge the settings into one `#[resilient(...)]`",
    ))
}

/// `#[tokio::main]` or `#[tokio::test]` written above `#[resilient]` expanded first: the body
/// left is a blocking `block_on(..)`, with no async body to wrap.
pub(crate) fn expanded_by_tokio(function: &ItemFn) -> Option<syn::Error> {
    // tokio's expansion: `runtime::Builder::new_…().build().expect(..).block_on(body)`.
    let body = function.block.to_token_stream();
    if !(mentions_ident(body.clone(), "Builder") && mentions_ident(body, "block_on")) {
        return None;
    }
    Some(syn::Error::new_spanned(
        &function.sig.ident,
        "`#[tokio::main]` (or `#[tokio::test]`) above `#[resilient]` expanded first and left a blocking function, with no async body to wrap: write `#[resilient(...)]` above `#[tokio::main]`, or put the work in an annotated `async fn` of its own and call it from `main`",
    ))
}

fn mentions_ident(tokens: TokenStream, name: &str) -> bool {
    tokens.into_iter().any(|token| match token {
        proc_macro2::TokenTree::Ident(ident) => ident == name,
        proc_macro2::TokenTree::Group(group) => mentions_ident(group.stream(), name),
        _ => false,
    })
}

/// `E` in a return type written `Result<T, E>` (any path ending in `Result` with two
/// arguments); aliases with one argument are left to the compiler.
fn error_type(sig: &Signature) -> Option<&Type> {
    let ReturnType::Type(_, ret) = &sig.output else {
        return None;
    };
    let (_, error) = result_arguments(ret)?;
    Some(error)
}

/// `(T, E)` of `Result<T, E>`.
fn result_arguments(ty: &Type) -> Option<(&Type, &Type)> {
    let Type::Path(path) = ungroup(ty) else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    match (types.next(), types.next(), types.next()) {
        (Some(ok), Some(error), None) => Some((ok, error)),
        _ => None,
    }
}

fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Paren(inner) => ungroup(&inner.elem),
        Type::Group(inner) => ungroup(&inner.elem),
        other => other,
    }
}

/// Error types that cannot take a `From<Rejection>` impl in the user's crate (the orphan rule)
/// and that users reach for: saying "add the impl" would send them to a dead end.
fn foreign_error(error: &Type) -> Option<syn::Error> {
    let name = match ungroup(error) {
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            if !matches!(last.arguments, PathArguments::None) {
                return None;
            }
            match last.ident.to_string().as_str() {
                "String" => "`String`".to_owned(),
                _ => return None,
            }
        }
        Type::Reference(reference) if is_str(&reference.elem) => "`&str`".to_owned(),
        Type::Tuple(tuple) if tuple.elems.is_empty() => "`()`".to_owned(),
        _ => return None,
    };
    Some(syn::Error::new_spanned(
        error,
        format!(
            "{name} cannot be a `#[resilient]` error type: the function returns its rejections (open breaker, full bulkhead, timeout) as `Err`, which needs `From<resilient::Rejection>`, and the orphan rule forbids writing that impl for a type of another crate; return an error type of your own (a newtype or an enum with a `Rejected(#[from] resilient::Rejection)` variant), `anyhow::Error`, or `Box<dyn std::error::Error + Send + Sync>`"
        ),
    ))
}

fn is_str(ty: &Type) -> bool {
    matches!(ungroup(ty), Type::Path(path) if path.path.is_ident("str"))
}

/// A type parameter used as the error type without a `'static` bound: the runtime hands errors
/// to `retry_if` predicates as `&dyn Any`. Without this check rustc reports it at the
/// attribute, once per use.
fn generic_error_not_static(sig: &Signature, error: &Type) -> Option<syn::Error> {
    let Type::Path(path) = ungroup(error) else {
        return None;
    };
    let ident = path.path.get_ident()?;
    let is_param = sig
        .generics
        .params
        .iter()
        .any(|param| matches!(param, GenericParam::Type(param) if param.ident == *ident));
    if !is_param || !surely_not_static(sig, ident) {
        return None;
    }
    Some(syn::Error::new_spanned(
        error,
        format!(
            "the error type `{ident}` must be `'static`: `#[resilient]` hands errors to the policy's `retry_if` predicates and listeners as `&dyn Any`; add `{ident}: 'static` to its bounds"
        ),
    ))
}

/// Traits that do not make their implementors `'static`: a parameter bounded by these alone
/// surely is not. Any other trait (`Any`, or one of the user's with a `'static` supertrait)
/// might be, so the parameter is left to the compiler rather than refused wrongly.
const NOT_STATIC_TRAITS: &[&str] = &[
    "From",
    "Into",
    "Debug",
    "Display",
    "Error",
    "Send",
    "Sync",
    "Clone",
    "Copy",
    "PartialEq",
    "Eq",
    "PartialOrd",
    "Ord",
    "Hash",
    "Default",
    "Unpin",
    "Sized",
    "AsRef",
    "ToString",
    "Transient",
];

/// Whether every bound on the type parameter `ident` is one of [`NOT_STATIC_TRAITS`] or a
/// lifetime other than `'static`.
fn surely_not_static(sig: &Signature, ident: &Ident) -> bool {
    let not_static = |bound: &TypeParamBound| match bound {
        TypeParamBound::Lifetime(lifetime) => lifetime.ident != "static",
        TypeParamBound::Trait(bound) => bound
            .path
            .segments
            .last()
            .is_some_and(|last| NOT_STATIC_TRAITS.iter().any(|name| last.ident == name)),
        _ => false,
    };
    let is_ident = |ty: &Type| matches!(ty, Type::Path(path) if path.path.is_ident(ident));
    let in_params = sig.generics.params.iter().all(|param| match param {
        GenericParam::Type(param) if param.ident == *ident => param.bounds.iter().all(not_static),
        _ => true,
    });
    let in_where = sig.generics.where_clause.iter().all(|clause| {
        clause.predicates.iter().all(|predicate| match predicate {
            WherePredicate::Type(predicate) if is_ident(&predicate.bounded_ty) => {
                predicate.bounds.iter().all(not_static)
            }
            _ => true,
        })
    });
    in_params && in_where
}

/// `&mut self` with retries or a fallback and a success value borrowed from `self`: after an
/// attempt `self` is borrowed again (by the next attempt, or the fallback), while a result
/// borrowed from the attempt would still hold the first borrow (the borrow checker cannot see
/// that only an `Err` goes on). rustc says "borrowed mutably in the previous iteration of the
/// loop" at the attribute; this says why and what to do.
fn borrow_from_mut_self(options: &Options, sig: &Signature) -> Option<syn::Error> {
    let retries = options.retries() > 0;
    let fallback = options.fallback.is_some();
    if !(retries || fallback) {
        return None;
    }
    let Some(FnArg::Receiver(receiver)) = sig.inputs.first() else {
        return None;
    };
    let (Some((_, self_lifetime)), Some(_)) = (&receiver.reference, receiver.mutability) else {
        return None;
    };
    let ReturnType::Type(_, ret) = &sig.output else {
        return None;
    };
    let (ok, _) = result_arguments(ret)?;
    let borrowed = match self_lifetime {
        // `&'a mut self`: a result naming `'a` borrows from `self`.
        Some(lifetime) => mentions_lifetime(ok, &lifetime.ident.to_string()),
        // `&mut self`: elided lifetimes in the result are `self`'s.
        None => has_elided_lifetime(ok),
    };
    if !borrowed {
        return None;
    }
    let (after, drop) = match (retries, fallback) {
        (true, false) => ("the next attempt", "drop the retries (`retries = 0`)"),
        (false, true) => ("the fallback", "drop the `fallback`"),
        _ => (
            "the next attempt or the fallback",
            "drop the retries and the `fallback`",
        ),
    };
    Some(syn::Error::new_spanned(
        ok,
        format!(
            "a success value borrowed from `&mut self` cannot be returned here: after an attempt, {after} borrows `self` again while the borrow checker still counts the attempt's borrow, held by its result; return owned data (e.g. `String` for `&str`, or a clone), or {drop}"
        ),
    ))
}

fn mentions_lifetime(ty: &Type, name: &str) -> bool {
    lifetimes(ty.to_token_stream())
        .iter()
        .any(|lifetime| lifetime == name)
}

/// A reference without a lifetime, or `'_`, anywhere in `ty`.
fn has_elided_lifetime(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, reference: &'ast syn::TypeReference) {
            if reference.lifetime.is_none() {
                self.0 = true;
            }
            syn::visit::visit_type_reference(self, reference);
        }
        fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
            if lifetime.ident == "_" {
                self.0 = true;
            }
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}

fn lifetimes(tokens: TokenStream) -> Vec<String> {
    let mut found = Vec::new();
    let mut after_quote = false;
    for token in tokens {
        match token {
            proc_macro2::TokenTree::Punct(punct) if punct.as_char() == '\'' => {
                after_quote = true;
                continue;
            }
            proc_macro2::TokenTree::Ident(ident) if after_quote => found.push(ident.to_string()),
            proc_macro2::TokenTree::Group(group) => found.extend(lifetimes(group.stream())),
            _ => {}
        }
        after_quote = false;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn options(tokens: TokenStream) -> Options {
        Options::parse(tokens).unwrap()
    }

    fn check_fn(args: TokenStream, function: TokenStream) -> Vec<String> {
        let function: ItemFn = syn::parse2(function).unwrap();
        match check(&options(args), &function) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn finds_a_second_attribute_by_any_path() {
        let found = check_fn(
            quote!(retries = 1),
            quote! {
                #[resilient::resilient(timeout = "1s")]
                async fn f() -> Result<u8, E> { Ok(1) }
            },
        );
        assert!(found[0].contains("written twice"), "{found:?}");
    }

    #[test]
    fn recognises_what_tokio_main_leaves() {
        let expanded: ItemFn = syn::parse_quote! {
            fn main() -> Result<(), E> {
                let body = async { Ok(()) };
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .expect("Failed building the Runtime")
                    .block_on(body)
            }
        };
        assert!(expanded_by_tokio(&expanded).is_some());
        let plain: ItemFn = syn::parse_quote!(
            fn f() -> Result<(), E> {
                Ok(())
            }
        );
        assert!(expanded_by_tokio(&plain).is_none());
    }

    #[test]
    fn refuses_string_and_str_errors_but_not_own_types() {
        let f = |ret: TokenStream| check_fn(quote!(retries = 1), quote!(async fn f() -> #ret {}));
        assert!(f(quote!(Result<u8, String>))[0].contains("orphan rule"));
        assert!(f(quote!(Result<u8, &'static str>))[0].contains("`&str`"));
        assert!(f(quote!(Result<u8, MyError>)).is_empty());
        assert!(f(quote!(anyhow::Result<u8>)).is_empty());
    }

    #[test]
    fn a_generic_error_needs_static_in_either_place() {
        let f = |generics: TokenStream, clause: TokenStream| {
            check_fn(
                quote!(retries = 1),
                quote!(async fn f #generics () -> Result<u8, E> #clause {}),
            )
        };
        assert!(f(quote!(<E: Clone>), quote!())[0].contains("`E: 'static`"));
        assert!(f(quote!(<E: Clone + 'static>), quote!()).is_empty());
        assert!(f(quote!(<E>), quote!(where E: 'static)).is_empty());
        assert!(!f(quote!(<E: std::fmt::Debug + Send>), quote!()).is_empty());
        // Traits that may imply `'static` are left to the compiler.
        assert!(f(quote!(<E: std::any::Any>), quote!()).is_empty());
        assert!(f(quote!(<E: MyError>), quote!()).is_empty());
        assert!(f(quote!(<E: Clone>), quote!(where E: MyError)).is_empty());
    }

    #[test]
    fn a_borrow_from_mut_self_with_retries_is_explained() {
        let f = |args: TokenStream, sig: TokenStream| check_fn(args, quote!(async fn #sig {}));
        let retried = quote!(retries = 1);
        assert!(!f(retried.clone(), quote!(get(&mut self) -> Result<&str, E>)).is_empty());
        assert!(
            !f(
                retried.clone(),
                quote!(get<'a>(&'a mut self) -> Result<&'a str, E>)
            )
            .is_empty()
        );
        assert!(
            f(
                retried.clone(),
                quote!(get(&mut self) -> Result<&'static str, E>)
            )
            .is_empty()
        );
        assert!(f(retried.clone(), quote!(get(&self) -> Result<&str, E>)).is_empty());
        assert!(f(retried, quote!(get(&mut self) -> Result<String, E>)).is_empty());
        assert!(
            f(
                quote!(timeout = "1s"),
                quote!(get(&mut self) -> Result<&str, E>)
            )
            .is_empty()
        );
        let found = f(
            quote!(fallback = stale),
            quote!(get(&mut self) -> Result<&str, E>),
        );
        assert!(
            found[0].contains("the fallback borrows `self` again"),
            "{found:?}"
        );
    }
}
