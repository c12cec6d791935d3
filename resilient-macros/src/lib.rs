//! The `#[resilient]` attribute. Depend on `resilient` and use it as `resilient::resilient`:
//! the generated code names `::resilient::__private` items only, and its documentation lives
//! on that re-export.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::ToTokens;

mod body;
mod diagnose;
mod duration;
mod expand;
mod krate;
mod options;
mod site;
mod values;

// No doc comment here: rustdoc would append it to the documentation of the re-export,
// `resilient::resilient`, which is where users read it.
#[proc_macro_attribute]
pub fn resilient(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_report(args.into(), item.into()).into()
}

/// Expands, or reports every problem at once next to the function as written, so that the user
/// sees our errors rather than a cascade, and rust-analyzer still knows the function.
fn expand_or_report(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let options = options::Options::parse(args);
    let function = parse_function(item.clone());
    let mut errors = Vec::new();
    match (options, function) {
        (Ok(options), Ok(function)) => match expand::expand(&options, function) {
            Ok(expanded) => return expanded,
            Err(error) => errors.push(error),
        },
        (options, function) => {
            if let Err(error) = options {
                errors.push(error.into());
            }
            if let Err(error) = function {
                errors.push(error);
            }
        }
    }
    let mut output = item;
    for error in errors {
        output.extend(error.into_compile_error());
    }
    output
}

/// The annotated function, or an error saying what the attribute was put on instead.
fn parse_function(item: TokenStream2) -> syn::Result<syn::ItemFn> {
    if let Ok(function) = syn::parse2::<syn::ItemFn>(item.clone()) {
        return Ok(function);
    }
    if let Ok(method) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
        return Err(syn::Error::new_spanned(
            &method.sig.ident,
            "`#[resilient]` needs the function's body: put it on the method in each impl, or give this trait method a default body",
        ));
    }
    let (what, token) = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(item)) => ("a struct", item.struct_token.into_token_stream()),
        Ok(syn::Item::Enum(item)) => ("an enum", item.enum_token.into_token_stream()),
        Ok(syn::Item::Union(item)) => ("a union", item.union_token.into_token_stream()),
        Ok(syn::Item::Const(item)) => ("a const", item.const_token.into_token_stream()),
        Ok(syn::Item::Static(item)) => ("a static", item.static_token.into_token_stream()),
        Ok(syn::Item::Trait(item)) => (
            "a trait; put it on the `async fn`s of the trait's impls",
            item.trait_token.into_token_stream(),
        ),
        Ok(syn::Item::Impl(item)) => (
            "an impl block; put it on each `async fn` inside",
            item.impl_token.into_token_stream(),
        ),
        Ok(syn::Item::Mod(item)) => ("a module", item.mod_token.into_token_stream()),
        Ok(syn::Item::Type(item)) => ("a type alias", item.type_token.into_token_stream()),
        _ => ("this item", item),
    };
    Err(syn::Error::new_spanned(
        token,
        format!("`#[resilient]` goes on an `async fn` returning `Result`, not on {what}"),
    ))
}
