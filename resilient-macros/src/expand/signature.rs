//! What the signature says: the return type (a `Result`, or the output of an `#[async_trait]`
//! future), and the statement that pins an attempt's output to it.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote_spanned};
use syn::visit_mut::VisitMut;
use syn::{
    Block, Expr, ExprAsync, ExprPath, GenericArgument, PathArguments, Stmt, Type, TypeParamBound,
};

use super::spans::first_last_spans;

/// Refuses return types that cannot be a `Result` whatever they alias, so the common mistake
/// gets one error; any other type is checked by the compiler, at the return type.
pub(super) fn check_return_type(ret: &Type) -> syn::Result<()> {
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

pub(super) fn empty_block() -> Block {
    Block {
        brace_token: syn::token::Brace::default(),
        stmts: Vec::new(),
    }
}

/// The last statement of an `#[async_trait]` method body, `Box::pin(async move { .. })`.
pub(super) fn async_trait_block(block: &mut Block) -> Option<&mut ExprAsync> {
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
pub(super) fn future_output(ty: &Type) -> Option<&Type> {
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

pub(super) fn bounds_output<'a>(
    mut bounds: impl Iterator<Item = &'a TypeParamBound>,
) -> Option<&'a Type> {
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

/// Pins the attempt block's output to the declared return type before the body is checked,
/// so `?` converts into it and a wrong tail expression is reported in the body.
pub(super) fn fake_return(ret: &Type) -> TokenStream {
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
pub(super) fn erase_impl_trait(ret: &Type) -> Type {
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
