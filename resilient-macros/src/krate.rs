//! `crate = path`: the expansion is written against `::resilient::__private`; with a `crate` key
//! (a renamed dependency, or a facade crate that re-exports `resilient`: serde's and tokio's
//! `crate` key), the generated block starts with `use <path>::__private as
//! __resilient_private;` and every prefix is rewritten to that name. A wrong path is then one
//! error, at the path the user wrote (rustc stays silent about the uses of a failed import),
//! rather than one per generated use. Rewriting the finished tokens keeps every generator free
//! of the question.

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::quote;

/// The generated block `tokens`, reaching `resilient` through `path`.
pub(crate) fn through(path: &syn::Path, tokens: TokenStream) -> TokenStream {
    let alias = Ident::new(ALIAS, Span::call_site());
    let tokens = rewrite(tokens);
    quote! {
        use #path::__private as #alias;
        #tokens
    }
}

const ALIAS: &str = "__resilient_private";

/// `tokens` with every `::resilient::__private` turned into the alias, shown where the prefix
/// was, so errors keep their place.
fn rewrite(tokens: TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(tokens.len());
    let mut index = 0;
    while index < tokens.len() {
        if let Some(at) = prefix_at(&tokens[index..]) {
            out.push(TokenTree::Ident(Ident::new(
                ALIAS,
                Span::call_site().located_at(at),
            )));
            // `::resilient::__private`
            index += 6;
            continue;
        }
        out.push(match &tokens[index] {
            TokenTree::Group(group) => {
                let mut inner = Group::new(group.delimiter(), rewrite(group.stream()));
                inner.set_span(group.span());
                TokenTree::Group(inner)
            }
            other => other.clone(),
        });
        index += 1;
    }
    out.into_iter().collect()
}

/// The span of `resilient` when `tokens` start with `:: resilient :: __private`.
fn prefix_at(tokens: &[TokenTree]) -> Option<Span> {
    let [
        TokenTree::Punct(a),
        TokenTree::Punct(b),
        TokenTree::Ident(name),
        TokenTree::Punct(c),
        TokenTree::Punct(d),
        TokenTree::Ident(private),
        ..,
    ] = tokens
    else {
        return None;
    };
    let colons = [a, b, c, d].iter().all(|p| p.as_char() == ':');
    (colons && name == "resilient" && private == "__private").then(|| name.span())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_every_prefix_at_any_depth() {
        let path: syn::Path = syn::parse_quote!(crate::facade::engine);
        let tokens = quote! {
            static S: ::resilient::__private::CallSite = f(|| { ::resilient::__private::start() });
            ::resilient::other::Thing;
        };
        let text = through(&path, tokens).to_string();
        assert_eq!(
            text,
            quote! {
                use crate::facade::engine::__private as __resilient_private;
                static S: __resilient_private::CallSite =
                    f(|| { __resilient_private::start() });
                ::resilient::other::Thing;
            }
            .to_string()
        );
    }
}
