//! Panics that stop one replica instead of the process.
//!
//! The node binary's panic hook exits the process on a panic (a restart beats a node
//! silently missing a replica). Code run through [`catch`] is the exception: the panic is
//! logged, unwinds to `catch`, and the caller stops only what the panic concerned (e.g. a
//! replica whose raft-rs state can no longer be trusted) while the process keeps serving
//! its other groups. The hook asks [`is_catching`] to tell the two apart.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static CATCHING: Cell<u32> = const { Cell::new(0) };
}

/// Whether the current thread is inside [`catch`] (a panic here will be caught).
pub fn is_catching() -> bool {
    CATCHING.with(|c| c.get() > 0)
}

/// Runs `f`; a panic inside becomes `Err` with the panic's message. The caller must not
/// use whatever `f` was changing afterwards (it may be half-updated).
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    struct Depth;
    impl Drop for Depth {
        fn drop(&mut self) {
            CATCHING.with(|c| c.set(c.get() - 1));
        }
    }
    CATCHING.with(|c| c.set(c.get() + 1));
    let depth = Depth;
    let result = catch_unwind(AssertUnwindSafe(f));
    drop(depth);
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_the_flag_is_reset() {
        assert!(!is_catching());
        assert_eq!(catch(is_catching), Ok(true));
        let err = catch(|| -> u32 { panic!("boom {}", 7) }).unwrap_err();
        assert_eq!(err, "boom 7");
        assert!(!is_catching());
    }
}
