//! What the body does with the function's arguments: which it mentions at all, and renaming
//! `self` so that each attempt can get its own (a `let self = …` is not allowed).

use proc_macro2::{Group, Ident, Spacing, Span, TokenStream, TokenTree};
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, ExprPath, Item, Macro};

/// The name `self` takes inside the body when an attempt needs its own receiver.
pub(crate) fn renamed_self(span: Span) -> Ident {
    Ident::new("__resilient_self", span)
}

/// Whether `tokens` mention `name`, at any depth (macro arguments included), or a string
/// literal contains it (a format string's `{name}` captures it). A mention that is not a use (a
/// field, a shadowing local, a word in a string) only costs a needless copy; a use always
/// mentions the name, since a macro cannot reach a caller's local otherwise.
pub(crate) fn mentions(tokens: TokenStream, name: &str) -> bool {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    tokens.iter().enumerate().any(|(index, token)| match token {
        TokenTree::Group(group) => mentions(group.stream(), name),
        TokenTree::Literal(literal) => literal.to_string().contains(name),
        // `self::item` names the module, not the receiver.
        TokenTree::Ident(ident) => {
            ident == name && !(name == "self" && is_path_sep(&tokens, index + 1))
        }
        TokenTree::Punct(_) => false,
    })
}

fn is_path_sep(tokens: &[TokenTree], at: usize) -> bool {
    matches!(
        (tokens.get(at), tokens.get(at + 1)),
        (Some(TokenTree::Punct(first)), Some(TokenTree::Punct(second)))
            if first.as_char() == ':' && first.spacing() == Spacing::Joint && second.as_char() == ':'
    )
}

/// Renames every use of `self` in `block` to `__resilient_self`, leaving nested items (whose
/// `self` is their own) and `self::` paths alone.
pub(crate) fn rename_self(block: &mut Block) {
    RenameSelf.visit_block_mut(block);
}

struct RenameSelf;

impl VisitMut for RenameSelf {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        if let Expr::Path(ExprPath {
            qself: None, path, ..
        }) = expr
            && path.leading_colon.is_none()
            && path.segments.len() == 1
            && path.segments[0].ident == "self"
        {
            let span = path.segments[0].ident.span();
            path.segments[0].ident = renamed_self(span);
            return;
        }
        visit_mut::visit_expr_mut(self, expr);
    }

    fn visit_item_mut(&mut self, _: &mut Item) {}

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        mac.tokens = rename_in_tokens(std::mem::take(&mut mac.tokens));
    }
}

fn rename_in_tokens(tokens: TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut renamed = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.iter().enumerate() {
        renamed.push(match token {
            TokenTree::Ident(ident) if ident == "self" && !is_path_sep(&tokens, index + 1) => {
                TokenTree::Ident(renamed_self(ident.span()))
            }
            TokenTree::Group(group) => {
                let mut inner = Group::new(group.delimiter(), rename_in_tokens(group.stream()));
                inner.set_span(group.span());
                TokenTree::Group(inner)
            }
            other => other.clone(),
        });
    }
    renamed.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::{ToTokens, quote};

    #[test]
    fn finds_mentions_at_any_depth() {
        assert!(mentions(
            quote!({
                let y = f(&[x]);
            }),
            "x"
        ));
        assert!(mentions(quote!(println!("{}", x)), "x"));
        assert!(mentions(quote!(println!("{x}")), "x"));
        assert!(!mentions(quote!(println!("{}", y)), "x"));
        assert!(mentions(quote!(self.count += 1), "self"));
        assert!(!mentions(quote!(self::helper()), "self"));
    }

    #[test]
    fn renames_self_but_not_nested_items_or_module_paths() {
        let mut block: Block = syn::parse_quote!({
            let a = self.value;
            self::helper(&self);
            println!("{:?}", self);
            impl Foo {
                fn g(&self) -> u32 {
                    self.0
                }
            }
        });
        rename_self(&mut block);
        let text = block.to_token_stream().to_string();
        assert!(text.contains("let a = __resilient_self . value"), "{text}");
        assert!(
            text.contains("self :: helper (& __resilient_self)"),
            "{text}"
        );
        assert!(
            text.contains("println ! (\"{:?}\" , __resilient_self)"),
            "{text}"
        );
        assert!(text.contains("self . 0"), "{text}");
    }
}
