//! Which panics end the process, and catching the ones that must not.
//!
//! The node's panic hook ([`install_hook`]) exits the process on a panic anywhere, as
//! kill -9 would: the WAL is durable, and a restart beats a node silently missing a
//! thread. The one exception is code run through [`catch`]: applying one committed entry
//! to a state machine. A panic there (a bug the validation missed, reached by a command
//! every replica holds) would otherwise make every replica of the group exit, and exit
//! again at the same entry on every restart. Caught, it stops that one replica
//! ([`crate::raft::apply`]) and the node goes on.
//!
//! Work the caught code hands to rayon's pool (HNSW batch inserts) panics on a `bulk-*`
//! thread; rayon carries that panic back to the caller, where [`catch`] gets it, so the
//! hook lets those through too while some thread is inside [`catch`].

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Threads currently inside [`catch`].
static CATCHING_ANYWHERE: AtomicUsize = AtomicUsize::new(0);

/// Runs `f`, turning a panic into `Err(message)`. The caller must treat whatever `f` was
/// mutating as unknown afterwards.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            CATCHING.with(|c| c.set(self.0));
            CATCHING_ANYWHERE.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let outer = CATCHING.with(|c| c.replace(true));
    CATCHING_ANYWHERE.fetch_add(1, Ordering::SeqCst);
    let _reset = Reset(outer);
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| message(&*p))
}

/// The text of a panic payload.
pub fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Whether a panic on the current thread will be caught by [`catch`] (here, or in the
/// caller rayon hands it back to).
pub fn is_caught() -> bool {
    if CATCHING.with(|c| c.get()) {
        return true;
    }
    let pool_thread = std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with("bulk-"));
    pool_thread && CATCHING_ANYWHERE.load(Ordering::SeqCst) > 0
}

/// Installs the node's hook: log every panic; exit (status 101) unless it will be caught.
pub fn install_hook() {
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        default_hook(info);
        if is_caught() {
            tracing::error!("panic: {info}; caught, the replica applying it stops");
            return;
        }
        tracing::error!("panic: {info}; exiting");
        std::process::exit(101);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_returns_the_value_or_the_message() {
        assert_eq!(catch(|| 7), Ok(7));
        let err = catch(|| -> u32 { panic!("boom {}", 42) }).unwrap_err();
        assert_eq!(err, "boom 42");
        assert!(!is_caught(), "flag reset after a caught panic");
    }

    #[test]
    fn nested_catch_keeps_the_outer_flag() {
        let r = catch(|| {
            let inner = catch(|| -> () { panic!("inner") });
            (inner, is_caught())
        });
        assert_eq!(r, Ok((Err("inner".to_string()), true)));
        assert!(!is_caught());
    }
}
