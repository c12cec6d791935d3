//! Token spans: where generated tokens are reported, and how they resolve.

use proc_macro2::{Span, TokenStream};

/// `tokens` re-located at `span`, when there is one.
///
/// They resolve as written at the attribute (as the parameters do), and count as generated:
/// rustc then reports a wrong fallback signature at the path without suggesting edits of the
/// generated call.
pub(super) fn at(tokens: TokenStream, span: Option<Span>) -> TokenStream {
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
pub(super) fn relocate(tokens: TokenStream, span: Span) -> TokenStream {
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

pub(super) fn first_last_spans(tokens: TokenStream) -> (Span, Span) {
    let mut tokens = tokens.into_iter();
    let first = tokens.next().map_or_else(Span::call_site, |t| t.span());
    let last = tokens.last().map_or(first, |t| t.span());
    (first, last)
}
