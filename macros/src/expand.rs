//! Turning an `async fn` into a synchronous one that runs its body on a
//! freshly built runtime.
//!
//! For
//!
//! ```text
//! #[wq::main(workers = 2)]
//! async fn main() -> Ret { body }
//! ```
//!
//! the output is
//!
//! ```text
//! fn main() -> Ret {
//!     ::wq::Builder::new()
//!         .workers(2)
//!         .build()
//!         .expect("failed to build the wq runtime")
//!         .block_on(async move { body })
//! }
//! ```
//!
//! and `#[wq::test]` produces the same function with
//! `#[::core::prelude::v1::test]` added after the user's own attributes,
//! on `Builder::new_current_thread()` unless `flavor = "multi_thread"` or
//! `workers` is given (tokio's defaults).
//!
//! When something is wrong the errors are emitted next to a version of the
//! function that is as close as possible to the intended one, so that the
//! only errors reported are the ones about the attribute itself and editors
//! can still analyse the body.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::{braced, token, AttrStyle, Attribute, Signature, Visibility};

use crate::config::{self, Config, Flavor};
use crate::errors::{with_error, Errors};

/// Which attribute is being expanded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Main,
    Test,
}

/// Expands `#[wq::main]` or `#[wq::test]` applied with `args` to `item`.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let input: AsyncFn = match syn::parse2(item.clone()) {
        Ok(input) => input,
        Err(err) => return with_error(item, err),
    };

    let (config, config_error) = config::parse(args);
    let mut errors = Errors::default();
    errors.extend(config_error);

    if input.sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            input.sig.fn_token,
            "the `async` keyword is missing from the function declaration",
        ));
    }
    let main_with_arguments =
        kind == Kind::Main && input.sig.ident == "main" && !input.sig.inputs.is_empty();
    if main_with_arguments {
        errors.push(syn::Error::new_spanned(
            &input.sig.inputs,
            "the main function cannot accept arguments",
        ));
    }
    let existing_test_attribute = input
        .outer_attrs
        .iter()
        .find(|attr| is_test_attribute(attr));
    if kind == Kind::Test {
        if let Some(attr) = existing_test_attribute {
            errors.push(syn::Error::new_spanned(
                attr,
                "second test attribute is supplied, consider removing or changing the order of \
                 your test attributes",
            ));
        }
    }
    // A test attribute is only added when there is not one already: with the
    // error above reported, a second one would just cause more errors.
    let add_test_attribute = kind == Kind::Test && existing_test_attribute.is_none();

    let Some(err) = errors.into_inner() else {
        return input.expand(&config, kind, add_test_attribute);
    };

    let fallback = if input.sig.asyncness.is_none() {
        // Already a valid synchronous function: keep it exactly as written.
        let test_attribute = add_test_attribute.then(test_attribute);
        quote!(#test_attribute #item)
    } else if main_with_arguments {
        input.expand_without_arguments()
    } else {
        input.expand(&config, kind, add_test_attribute)
    };
    with_error(fallback, err)
}

/// `tokens` with every span, including those of delimiters, set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                token = TokenTree::Group(respanned);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// The attribute `#[wq::test]` adds, written so that no `test` in scope can
/// shadow it.
fn test_attribute() -> TokenStream {
    quote!(#[::core::prelude::v1::test])
}

/// Whether `attr` is the standard test attribute: `#[test]`,
/// `#[core::prelude::*::test]` or `#[std::prelude::*::test]`.
fn is_test_attribute(attr: &Attribute) -> bool {
    let syn::Meta::Path(path) = &attr.meta else {
        return false;
    };
    let segments: Vec<String> = path
        .segments
        .iter()
        .map(|segment| match segment.arguments {
            syn::PathArguments::None => segment.ident.to_string(),
            _ => String::new(),
        })
        .collect();
    match segments.as_slice() {
        [test] => path.leading_colon.is_none() && test == "test",
        [root, prelude, _, test] => {
            (root == "core" || root == "std") && prelude == "prelude" && test == "test"
        }
        _ => false,
    }
}

/// A function whose body is kept as unparsed tokens: the body is only moved
/// into an `async` block, so parsing it would cost time and would make the
/// whole expansion fail while the body is being edited.
struct AsyncFn {
    outer_attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    brace_token: token::Brace,
    inner_attrs: Vec<Attribute>,
    stmts: TokenStream,
}

impl Parse for AsyncFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let outer_attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let content;
        let brace_token = braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let stmts = content.parse()?;
        Ok(AsyncFn {
            outer_attrs,
            vis,
            sig,
            brace_token,
            inner_attrs,
            stmts,
        })
    }
}

impl AsyncFn {
    /// The synchronous function that runs the body on a new runtime.
    fn expand(&self, config: &Config, kind: Kind, add_test_attribute: bool) -> TokenStream {
        let mut sig = self.sig.clone();
        sig.asyncness = None;
        let run = self.run_body(config, kind);
        self.emit(add_test_attribute, &sig, &run)
    }

    /// For `async fn main(args...)`: a `main` without the arguments, whose
    /// body is still type-checked with the arguments in scope, so that the
    /// only error reported is the one about the arguments.
    fn expand_without_arguments(&self) -> TokenStream {
        let mut sig = self.sig.clone();
        sig.asyncness = None;
        let inputs = std::mem::take(&mut sig.inputs);
        let body = self.body();
        self.emit(
            false,
            &sig,
            &quote! {
                let _ = |#inputs| async move #body;
                ::core::unreachable!()
            },
        )
    }

    /// The original body, without its inner attributes, in its original braces.
    fn body(&self) -> TokenStream {
        let mut body = TokenStream::new();
        self.brace_token
            .surround(&mut body, |tokens| self.stmts.to_tokens(tokens));
        body
    }

    /// The expression that builds the runtime and blocks on the body.
    ///
    /// The expression is given the location of the body's last statement, so
    /// a body whose value does not match the declared return type is reported
    /// there rather than on the attribute.
    fn run_body(&self, config: &Config, kind: Kind) -> TokenStream {
        let (start, end) = self.last_statement_span();
        let crate_path = respan(config.crate_path.to_token_stream(), start);
        let flavor = match (config.flavor, kind, &config.workers) {
            (Some(flavor), _, _) => flavor,
            (None, _, Some(_)) | (None, Kind::Main, None) => Flavor::MultiThread,
            (None, Kind::Test, None) => Flavor::CurrentThread,
        };
        let builder = match flavor {
            Flavor::MultiThread => quote!(new),
            Flavor::CurrentThread => quote!(new_current_thread),
        };
        let workers = config.workers.as_ref().map(|n| quote!(.workers(#n)));
        let start_paused = config
            .start_paused
            .as_ref()
            .map(|b| quote!(.start_paused(#b)));
        let body = self.body();
        quote_spanned! {end=>
            #crate_path::Builder::#builder()
                #workers
                #start_paused
                .build()
                .expect("failed to build the wq runtime")
                .block_on(async move #body)
        }
    }

    /// The spans of the first and last tokens of the body's last statement,
    /// or of the closing brace when the body is empty.
    fn last_statement_span(&self) -> (Span, Span) {
        let mut last_statement = Vec::new();
        let mut tokens = self.stmts.clone().into_iter().peekable();
        while let Some(token) = tokens.next() {
            let ends_statement = matches!(&token, TokenTree::Punct(p) if p.as_char() == ';');
            last_statement.push(token);
            if ends_statement && tokens.peek().is_some() {
                last_statement.clear();
            }
        }
        let close = self.brace_token.span.close();
        let start = last_statement.first().map_or(close, TokenTree::span);
        let end = last_statement.last().map_or(close, TokenTree::span);
        // Only the location is borrowed: names still resolve as they would
        // at the attribute.
        let at = |location: Span| Span::call_site().located_at(location);
        (at(start), at(end))
    }

    /// The user's attributes, visibility and `sig` around `body`.
    fn emit(&self, add_test_attribute: bool, sig: &Signature, body: &TokenStream) -> TokenStream {
        let outer_attrs = &self.outer_attrs;
        // Inner attributes (`#![allow(...)]`) cannot stay inside an `async`
        // block, so they become outer attributes of the function, where they
        // apply to the same code.
        let inner_attrs = self.inner_attrs.iter().map(|attr| {
            let mut attr = attr.clone();
            attr.style = AttrStyle::Outer;
            attr
        });
        let test_attribute = add_test_attribute.then(test_attribute);
        let vis = &self.vis;
        let mut tokens = quote! {
            #(#outer_attrs)*
            #(#inner_attrs)*
            #test_attribute
            #vis #sig
        };
        self.brace_token
            .surround(&mut tokens, |tokens| body.to_tokens(tokens));
        tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expansion as a string, without whitespace, so that it can be
    /// compared independently of how tokens such as `>>` were split.
    fn expand_to_string(kind: Kind, args: TokenStream, item: TokenStream) -> String {
        squeeze(&expand(kind, args, item))
    }

    fn squeeze(tokens: &TokenStream) -> String {
        tokens.to_string().replace(char::is_whitespace, "")
    }

    #[test]
    fn main_becomes_a_synchronous_function_blocking_on_its_body() {
        let output = expand_to_string(
            Kind::Main,
            quote!(workers = 2),
            quote! {
                /// Docs.
                pub async fn main() -> Result<(), Box<dyn Error>> {
                    #![allow(unused)]
                    if true { return Ok(()); }
                    Ok(())
                }
            },
        );
        let expected = quote! {
            #[doc = r" Docs."]
            #[allow(unused)]
            pub fn main() -> Result<(), Box<dyn Error>> {
                ::wq::Builder::new()
                    .workers(2)
                    .build()
                    .expect("failed to build the wq runtime")
                    .block_on(async move {
                        if true { return Ok(()); }
                        Ok(())
                    })
            }
        };
        assert_eq!(output, squeeze(&expected));
    }

    #[test]
    fn test_adds_the_test_attribute_and_honours_the_crate_path() {
        let output = expand_to_string(
            Kind::Test,
            quote!(crate = "renamed"),
            quote! {
                #[ignore]
                async fn works() {}
            },
        );
        let expected = quote! {
            #[ignore]
            #[::core::prelude::v1::test]
            fn works() {
                renamed::Builder::new_current_thread()
                    .build()
                    .expect("failed to build the wq runtime")
                    .block_on(async move {})
            }
        };
        assert_eq!(output, squeeze(&expected));
    }

    #[test]
    fn flavors_pick_the_builder() {
        let build = |kind, args| {
            expand_to_string(
                kind,
                args,
                quote!(
                    async fn f() {}
                ),
            )
        };
        assert!(build(Kind::Main, quote!()).contains("Builder::new()"));
        assert!(build(Kind::Test, quote!()).contains("Builder::new_current_thread()"));
        assert!(build(Kind::Test, quote!(workers = 2)).contains("Builder::new().workers(2)"));
        assert!(build(Kind::Test, quote!(flavor = "multi_thread")).contains("Builder::new()"));
        assert!(build(Kind::Main, quote!(flavor = "current_thread"))
            .contains("Builder::new_current_thread()"));
        assert!(build(Kind::Main, quote!(worker_threads = 3)).contains(".workers(3)"));
    }

    #[test]
    fn errors_come_with_the_expanded_function() {
        let output = expand_to_string(
            Kind::Main,
            quote!(workers = 0),
            quote!(
                async fn main() {}
            ),
        );
        assert!(output.contains("compile_error"));
        assert!(output.contains("atleast1"));
        assert!(output.contains("block_on"));
    }

    #[test]
    fn a_synchronous_function_is_emitted_unchanged() {
        let output = expand_to_string(
            Kind::Main,
            TokenStream::new(),
            quote!(
                fn main() {}
            ),
        );
        assert!(output.starts_with("fnmain(){}"), "{output}");
        assert!(output.contains("the`async`keywordismissing"));

        let output = expand_to_string(
            Kind::Test,
            TokenStream::new(),
            quote!(
                fn check() {}
            ),
        );
        let expected = quote!(
            #[::core::prelude::v1::test]
            fn check() {}
        );
        assert!(output.starts_with(&squeeze(&expected)));
    }

    #[test]
    fn a_second_test_attribute_is_rejected_and_not_duplicated() {
        for attr in [
            quote!(#[test]),
            quote!(#[core::prelude::v1::test]),
            quote!(#[::std::prelude::rust_2021::test]),
        ] {
            let output = expand_to_string(
                Kind::Test,
                TokenStream::new(),
                quote!(#attr async fn twice() {}),
            );
            assert!(output.contains("secondtestattributeissupplied"), "{output}");
            assert!(!output.contains("#[::core::prelude::v1::test]"), "{output}");
        }
    }

    #[test]
    fn other_test_like_attributes_are_not_mistaken_for_test() {
        let output = expand_to_string(
            Kind::Test,
            TokenStream::new(),
            quote!(
                #[my::test]
                #[test_case(1)]
                async fn once() {}
            ),
        );
        assert!(!output.contains("compile_error"), "{output}");
    }

    #[test]
    fn main_only_rejects_arguments_when_it_is_called_main() {
        let output = expand_to_string(
            Kind::Main,
            TokenStream::new(),
            quote!(
                async fn main(x: u8) {}
            ),
        );
        assert!(output.contains("themainfunctioncannotacceptarguments"));

        let output = expand_to_string(
            Kind::Main,
            TokenStream::new(),
            quote!(
                async fn run(x: u8) {}
            ),
        );
        assert!(!output.contains("compile_error"), "{output}");
    }

    #[test]
    fn items_that_are_not_functions_are_kept() {
        let output = expand_to_string(
            Kind::Main,
            TokenStream::new(),
            quote!(
                struct S;
            ),
        );
        assert!(output.starts_with("structS;"), "{output}");
        assert!(output.contains("compile_error"));
    }
}
