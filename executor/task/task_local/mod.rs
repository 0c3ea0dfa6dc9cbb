//! Task-local storage: values that belong to a task (a future, really)
//! rather than to a thread, declared with [`task_local!`](crate::task_local).
//!
//! A [`LocalKey`] is backed by a thread-local slot. Its
//! [`scope`](LocalKey::scope) future keeps the value itself, and swaps it
//! into the slot for each poll of the future inside and back out after
//! (also when that poll panics), so the value follows the future from
//! worker to worker, and two tasks polled on one thread one after the other
//! each see their own. Scopes nest: an inner one shadows the outer value
//! and restores it when its poll ends.

mod error;
mod future;
mod key;

pub use error::AccessError;
pub use future::TaskLocalFuture;
pub use key::LocalKey;

/// Declares task-local keys: statics of type
/// [`wq::task::LocalKey`](crate::task::LocalKey), each holding a value
/// only inside its [`scope`](crate::task::LocalKey::scope) or
/// [`sync_scope`](crate::task::LocalKey::sync_scope).
///
/// Any number of declarations, each with its own visibility and
/// attributes (doc comments included), as with `thread_local!`:
///
/// ```
/// wq::task_local! {
///     /// The id of the request being served.
///     pub static REQUEST_ID: u64;
///
///     #[allow(dead_code)]
///     static USER: String;
/// }
///
/// # let rt = wq::Runtime::new().unwrap();
/// # rt.block_on(async {
/// REQUEST_ID
///     .scope(7, async {
///         wq::task::yield_now().await;
///         assert_eq!(REQUEST_ID.get(), 7);
///     })
///     .await;
/// # });
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};

    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty; $($rest:tt)*) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
        $crate::task_local!($($rest)*);
    };

    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
    };
}

/// One declaration of [`task_local!`]: a `LocalKey` static backed by a
/// thread-local slot of its own.
#[doc(hidden)]
#[macro_export]
macro_rules! __task_local_key {
    ($(#[$attr:meta])* $vis:vis $name:ident, $t:ty) => {
        $(#[$attr])*
        $vis static $name: $crate::task::LocalKey<$t> = {
            ::std::thread_local! {
                static SLOT: ::std::cell::RefCell<::std::option::Option<$t>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            $crate::task::LocalKey::__from_slot(SLOT)
        };
    };
}
