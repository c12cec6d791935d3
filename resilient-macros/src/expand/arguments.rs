//! What each attempt gets from the function's arguments: copies, re-borrows and clones, the
//! arguments handed to the fallback, and the owned values of the cache's default key.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::visit_mut::VisitMut;
use syn::{Block, FnArg, Ident, Pat, PatIdent, Receiver, Signature, Type};

use crate::body;
use crate::options::Options;

use super::signature::erase_impl_trait;
use super::spans::{at, relocate};

/// How an attempt gets an argument the body mentions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// A shared reference: each attempt copies it.
    Copy,
    /// `&mut`: each attempt re-borrows it.
    Reborrow,
    /// By value: each attempt clones it, when the original is needed again.
    Clone,
}

pub(super) fn access_of(ty: &Type) -> Access {
    match ty {
        Type::Reference(reference) if reference.mutability.is_some() => Access::Reborrow,
        Type::Reference(_) => Access::Copy,
        Type::Paren(inner) => access_of(&inner.elem),
        Type::Group(inner) => access_of(&inner.elem),
        _ => Access::Clone,
    }
}

/// What the attempts and the fallback get from the function's arguments.
pub(super) struct Arguments {
    /// Statements run before each attempt: its own copy or re-borrow of each argument the body
    /// mentions, when the original is needed afterwards.
    pub(super) copies: Vec<TokenStream>,
    /// The arguments handed to the fallback, receiver first.
    pub(super) passed: Vec<TokenStream>,
    /// Each named argument as an owned value, for the cache's default key.
    pub(super) owned: Vec<TokenStream>,
}

impl Arguments {
    /// Reads the signature; takes `mut` off arguments whose copy becomes the mutable binding,
    /// and renames `self` in `body` when each attempt needs its own receiver.
    pub(super) fn of(
        options: &Options,
        sig: &mut Signature,
        body: &mut Block,
    ) -> syn::Result<Self> {
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
pub(super) fn owned_key_part(ident: &Ident, access: Access) -> TokenStream {
    let span = ident.span();
    match access {
        Access::Copy | Access::Reborrow => {
            quote_spanned!(span=> ::resilient::__private::owned(#ident))
        }
        Access::Clone => quote_spanned!(span=> ::resilient::__private::owned(&#ident)),
    }
}

/// A `&mut` argument of a hedged function: its attempts run side by side.
pub(super) fn shared_by_hedges(argument: &dyn ToTokens) -> syn::Error {
    syn::Error::new_spanned(
        argument,
        "`hedge` runs attempts side by side, so each needs its own copy of this argument, and a `&mut` cannot be shared: take it by value (a `Clone` type) or by shared reference, or remove `hedge`",
    )
}

/// The per-attempt receiver, `__resilient_self`, which `body` is renamed to use (a
/// `let self = …` is not allowed).
pub(super) fn receiver_copy(receiver: &mut Receiver, body: &mut Block) -> Option<TokenStream> {
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
pub(super) fn copy(binding: &mut PatIdent, access: Access, ty: Option<&Type>) -> TokenStream {
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
pub(super) struct Bindings<'a> {
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

pub(super) fn combine(errors: &mut Option<syn::Error>, error: syn::Error) {
    match errors {
        Some(existing) => existing.combine(error),
        None => *errors = Some(error),
    }
}
