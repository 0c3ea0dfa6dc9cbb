//! Parsing of the options written inside `#[wq::main(...)]` and `#[wq::test(...)]`.
//!
//! Parsing never stops at the first mistake: every option is checked, each
//! problem becomes its own span-located error, and the options that were
//! valid are still kept so the function can be expanded as closely as
//! possible to what was meant.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Lit, LitInt, Meta, Token};

use crate::errors::Errors;

/// The option names this version understands, in the order they are listed
/// in error messages.
const KNOWN: [&str; 4] = ["flavor", "workers", "start_paused", "crate"];

/// The list of known options as it appears in error messages.
const EXPECTED: &str = "expected one of `flavor`, `workers`, `start_paused`, `crate`";

/// Options of the tokio attributes that have no counterpart here yet.
const UNSUPPORTED: [&str; 1] = ["unhandled_panic"];

/// Which runtime the attribute builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `Builder::new_current_thread()`.
    CurrentThread,
    /// `Builder::new()`.
    MultiThread,
}

/// The options given to one attribute.
pub(crate) struct Config {
    /// `flavor = "current_thread" | "multi_thread"`; `None` leaves the
    /// attribute's default (`multi_thread` for `main`, `current_thread` for
    /// `test`, as tokio's, and `multi_thread` whenever `workers` is given).
    pub(crate) flavor: Option<Flavor>,
    /// `workers = N`: the number of worker threads, validated to be at least 1.
    /// `None` leaves the runtime's own default in place.
    pub(crate) workers: Option<LitInt>,
    /// `start_paused = true`: the runtime's clock starts paused.
    pub(crate) start_paused: Option<syn::LitBool>,
    /// `crate = "path"`: where the runtime is found; `::wq` unless given.
    pub(crate) crate_path: syn::Path,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            flavor: None,
            workers: None,
            start_paused: None,
            crate_path: syn::parse_quote!(::wq),
        }
    }
}

/// Parses the attribute's arguments.
///
/// Returns the options that could be understood (defaults in place of the
/// invalid ones) together with every error found, combined into one.
pub(crate) fn parse(args: TokenStream) -> (Config, Option<syn::Error>) {
    let mut config = Config::default();
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(metas) => metas,
        Err(err) => return (config, Some(err)),
    };

    let mut errors = Errors::default();
    let mut workers_seen = false;
    let mut flavor_seen = false;
    let mut crate_seen = false;
    let mut start_paused_seen = false;

    for meta in metas {
        let key = meta.path();
        let name = path_to_string(key);
        match name.as_str() {
            "flavor" => {
                if std::mem::replace(&mut flavor_seen, true) {
                    errors.push(duplicate(key, "flavor"));
                    continue;
                }
                match value_of(&meta, "flavor", "`flavor = \"current_thread\"`")
                    .and_then(parse_flavor)
                {
                    Ok(flavor) => config.flavor = Some(flavor),
                    Err(err) => errors.push(err),
                }
            }
            // tokio's name, accepted as is.
            "workers" | "worker_threads" => {
                if std::mem::replace(&mut workers_seen, true) {
                    errors.push(duplicate(key, "workers"));
                    continue;
                }
                match value_of(&meta, "workers", "`workers = 4`").and_then(parse_workers) {
                    Ok(lit) => config.workers = Some(lit),
                    Err(err) => errors.push(err),
                }
            }
            "start_paused" => {
                if std::mem::replace(&mut start_paused_seen, true) {
                    errors.push(duplicate(key, "start_paused"));
                    continue;
                }
                match value_of(&meta, "start_paused", "`start_paused = true`").and_then(parse_bool)
                {
                    Ok(lit) => config.start_paused = Some(lit),
                    Err(err) => errors.push(err),
                }
            }
            "crate" => {
                if std::mem::replace(&mut crate_seen, true) {
                    errors.push(duplicate(key, "crate"));
                    continue;
                }
                match value_of(&meta, "crate", "`crate = \"::wq\"`").and_then(parse_crate) {
                    Ok(path) => config.crate_path = path,
                    Err(err) => errors.push(err),
                }
            }
            _ => errors.push(syn::Error::new_spanned(key, unknown_key_message(&name))),
        }
    }

    if config.flavor == Some(Flavor::CurrentThread) {
        if let Some(workers) = &config.workers {
            errors.push(syn::Error::new(
                workers.span(),
                "`workers` needs the `multi_thread` flavor: a current-thread runtime runs its \
                 tasks on the thread that blocks on it; write `flavor = \"multi_thread\"` or \
                 leave `flavor` out",
            ));
            config.workers = None;
        }
    }
    (config, errors.into_inner())
}

fn parse_flavor(value: &Expr) -> syn::Result<Flavor> {
    let expected = "`flavor` expects \"current_thread\" or \"multi_thread\"";
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Str(lit), ..
    }) = value
    else {
        return Err(syn::Error::new_spanned(value, expected));
    };
    match lit.value().as_str() {
        "current_thread" => Ok(Flavor::CurrentThread),
        "multi_thread" => Ok(Flavor::MultiThread),
        other => Err(syn::Error::new(
            lit.span(),
            format!("{expected}, got {other:?}"),
        )),
    }
}

/// Renders an option's name the way it was written, e.g. `worker_threads` or `a::b`.
fn path_to_string(path: &syn::Path) -> String {
    match path.get_ident() {
        Some(ident) => ident.to_string(),
        None => quote::ToTokens::to_token_stream(path)
            .to_string()
            .replace(' ', ""),
    }
}

fn duplicate(key: &syn::Path, name: &str) -> syn::Error {
    syn::Error::new_spanned(key, format!("`{name}` is set more than once"))
}

/// The value of a `key = value` option, or an error when the option was
/// written without one (`workers`, `workers(4)`).
fn value_of<'a>(meta: &'a Meta, name: &str, example: &str) -> syn::Result<&'a Expr> {
    match meta {
        Meta::NameValue(name_value) => Ok(strip_groups(&name_value.value)),
        _ => Err(syn::Error::new_spanned(
            meta,
            format!("`{name}` expects a value, e.g. {example}"),
        )),
    }
}

/// Looks through the invisible groups that declarative macros wrap around
/// fragments such as `$n:literal`.
fn strip_groups(mut expr: &Expr) -> &Expr {
    while let Expr::Group(group) = expr {
        expr = &group.expr;
    }
    expr
}

fn parse_workers(value: &Expr) -> syn::Result<LitInt> {
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(lit), ..
    }) = value
    else {
        return Err(syn::Error::new_spanned(
            value,
            "`workers` expects an integer literal, e.g. `workers = 4`",
        ));
    };
    let workers = lit.base10_parse::<usize>().map_err(|err| {
        syn::Error::new(
            lit.span(),
            format!("`workers` expects an integer literal that fits in a `usize`: {err}"),
        )
    })?;
    if workers == 0 {
        return Err(syn::Error::new(lit.span(), "`workers` must be at least 1"));
    }
    // Re-emitted without any suffix the user wrote (`2u8`), so it is always a `usize`.
    Ok(LitInt::new(&workers.to_string(), lit.span()))
}

fn parse_bool(value: &Expr) -> syn::Result<syn::LitBool> {
    match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Bool(lit),
            ..
        }) => Ok(lit.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            "`start_paused` expects `true` or `false`, e.g. `start_paused = true`",
        )),
    }
}

fn parse_crate(value: &Expr) -> syn::Result<syn::Path> {
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Str(lit), ..
    }) = value
    else {
        return Err(syn::Error::new_spanned(
            value,
            "`crate` expects a string literal holding a path, e.g. `crate = \"::wq\"`",
        ));
    };
    lit.parse_with(syn::Path::parse_mod_style).map_err(|err| {
        syn::Error::new(
            lit.span(),
            format!(
                "`crate` expects a path such as `::wq` or `my_crate::rt`, \
                 but {:?} is not one: {err}",
                lit.value()
            ),
        )
    })
}

/// The message for an option this version does not know, with a hint when
/// the name is recognisably close to one it does.
fn unknown_key_message(name: &str) -> String {
    if UNSUPPORTED.contains(&name) {
        return format!("`{name}` is not supported yet by this version of wq; {EXPECTED}");
    }
    let message = format!("unknown attribute `{name}`; {EXPECTED}");
    if let Some(suggestion) = closest_known(name) {
        format!("{message}; did you mean `{suggestion}`?")
    } else {
        message
    }
}

/// The known option within an edit distance of 2 of `name`, if any.
fn closest_known(name: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .map(|known| (edit_distance(name, known), *known))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance between two strings, counted in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn errors_of(args: TokenStream) -> Vec<String> {
        match parse(args).1 {
            Some(err) => err.into_iter().map(|e| e.to_string()).collect(),
            None => Vec::new(),
        }
    }

    #[test]
    fn empty_arguments_give_the_defaults() {
        let (config, err) = parse(TokenStream::new());
        assert!(err.is_none());
        assert!(config.workers.is_none());
        assert_eq!(path_to_string(&config.crate_path), "::wq");
    }

    #[test]
    fn both_options_are_read() {
        let (config, err) = parse(quote!(workers = 3, crate = "my::rt"));
        assert!(err.is_none());
        assert_eq!(config.workers.unwrap().base10_digits(), "3");
        assert_eq!(path_to_string(&config.crate_path), "my::rt");
    }

    #[test]
    fn suffixed_worker_counts_lose_their_suffix() {
        let (config, err) = parse(quote!(workers = 2u8));
        assert!(err.is_none());
        assert_eq!(config.workers.unwrap().to_string(), "2");
    }

    #[test]
    fn zero_workers_is_rejected() {
        assert_eq!(
            errors_of(quote!(workers = 0)),
            ["`workers` must be at least 1"]
        );
    }

    #[test]
    fn non_integer_workers_is_rejected() {
        let expected = ["`workers` expects an integer literal, e.g. `workers = 4`"];
        assert_eq!(errors_of(quote!(workers = "two")), expected);
        assert_eq!(errors_of(quote!(workers = N)), expected);
        assert_eq!(
            errors_of(quote!(workers)),
            ["`workers` expects a value, e.g. `workers = 4`"]
        );
    }

    #[test]
    fn every_error_is_reported_and_valid_options_are_kept() {
        let (config, err) = parse(quote!(workers = 0, wokers = 1, crate = "renamed"));
        let errors: Vec<String> = err.unwrap().into_iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2);
        assert!(config.workers.is_none());
        assert_eq!(path_to_string(&config.crate_path), "renamed");
    }

    #[test]
    fn duplicates_are_rejected() {
        assert_eq!(
            errors_of(quote!(workers = 1, workers = 2)),
            ["`workers` is set more than once"]
        );
        assert_eq!(
            errors_of(quote!(crate = "a", crate = "b")),
            ["`crate` is set more than once"]
        );
    }

    #[test]
    fn unknown_keys_get_suggestions() {
        assert_eq!(
            errors_of(quote!(wokers = 2)),
            ["unknown attribute `wokers`; expected one of `flavor`, `workers`, `start_paused`, `crate`; did you mean `workers`?"]
        );
        assert_eq!(
            errors_of(quote!(crat = "wq")),
            ["unknown attribute `crat`; expected one of `flavor`, `workers`, `start_paused`, `crate`; did you mean `crate`?"]
        );
        assert_eq!(
            errors_of(quote!(flavour = "current_thread")),
            ["unknown attribute `flavour`; expected one of `flavor`, `workers`, `start_paused`, `crate`; did you mean `flavor`?"]
        );
        assert_eq!(
            errors_of(quote!(threads = 2)),
            ["unknown attribute `threads`; expected one of `flavor`, `workers`, `start_paused`, `crate`"]
        );
        assert_eq!(
            errors_of(quote!(a::b = 2)),
            ["unknown attribute `a::b`; expected one of `flavor`, `workers`, `start_paused`, `crate`"]
        );
    }

    #[test]
    fn tokio_spellings_are_accepted() {
        let (config, err) = parse(quote!(flavor = "multi_thread", worker_threads = 2));
        assert!(err.is_none());
        assert_eq!(config.flavor, Some(Flavor::MultiThread));
        assert_eq!(config.workers.unwrap().base10_digits(), "2");
        assert_eq!(
            errors_of(quote!(workers = 1, worker_threads = 2)),
            ["`workers` is set more than once"]
        );
    }

    #[test]
    fn flavor_is_checked() {
        let (config, err) = parse(quote!(flavor = "current_thread"));
        assert!(err.is_none());
        assert_eq!(config.flavor, Some(Flavor::CurrentThread));
        assert_eq!(
            errors_of(quote!(flavor = "single")),
            ["`flavor` expects \"current_thread\" or \"multi_thread\", got \"single\""]
        );
        assert_eq!(
            errors_of(quote!(flavor = current_thread)),
            ["`flavor` expects \"current_thread\" or \"multi_thread\""]
        );
        assert_eq!(
            errors_of(quote!(flavor = "current_thread", workers = 2)),
            ["`workers` needs the `multi_thread` flavor: a current-thread runtime runs its tasks \
              on the thread that blocks on it; write `flavor = \"multi_thread\"` or leave \
              `flavor` out"]
        );
    }

    #[test]
    fn tokio_only_options_are_named_as_unsupported() {
        assert_eq!(
            errors_of(quote!(unhandled_panic = "shutdown_runtime")),
            [
                "`unhandled_panic` is not supported yet by this version of wq; expected one of \
              `flavor`, `workers`, `start_paused`, `crate`"
            ]
        );
    }

    #[test]
    fn start_paused_takes_a_bool() {
        assert_eq!(
            errors_of(quote!(start_paused = 1)),
            ["`start_paused` expects `true` or `false`, e.g. `start_paused = true`"]
        );
        assert_eq!(
            errors_of(quote!(start_paused = true, start_paused = false)),
            ["`start_paused` is set more than once"]
        );
    }

    #[test]
    fn crate_must_be_a_string_holding_a_path() {
        assert_eq!(
            errors_of(quote!(crate = wq)),
            ["`crate` expects a string literal holding a path, e.g. `crate = \"::wq\"`"]
        );
        assert_eq!(errors_of(quote!(crate = "not a path")).len(), 1);
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("workers", "workers"), 0);
        assert_eq!(edit_distance("wokers", "workers"), 1);
        assert_eq!(edit_distance("worker", "workers"), 1);
        assert_eq!(edit_distance("wrokers", "workers"), 2);
        assert_eq!(edit_distance("", "crate"), 5);
    }
}
