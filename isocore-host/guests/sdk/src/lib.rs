//! Writing Isocore processes in Rust.
//!
//! A process implements [`Guest`] (`init` once, `handle` per signal) and names its type with
//! [`export!`]. The crate is `no_std`: a component built with it imports only the `isocore:*`
//! interfaces it uses, never WASI, so the host can refuse anything else.
#![no_std]

extern crate alloc;

/// The generated bindings. (Inside a module: at the crate root the exported macros would
/// collide with their own re-exports.)
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "actor",
        pub_export_macro: true,
        default_bindings_module: "isocore_guest::bindings",
        generate_all,
    });
}

pub use bindings::isocore::channel::channel;
pub use bindings::isocore::process::{clock, log, process, random};
pub use bindings::isocore::service::service;
pub use bindings::{Guest, export};

#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// A panic ends the process with a trap; the host reports it as a crash.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// Reads a little-endian `u64` from the first 8 bytes of `body` (0 if shorter).
pub fn u64_of(body: &[u8]) -> u64 {
    body.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// The canonical ABI's allocation entry point, which the host calls to pass lists and
/// strings in. (On `wasm32-wasip2` it usually comes from the C library, which a `no_std`
/// guest does not link.)
///
/// # Safety
/// Called by the host with the canonical ABI's contract: `old_ptr` is null or came from a
/// previous call with `old_len` and `align`.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(old_ptr: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, handle_alloc_error, realloc};
    if new_len == 0 {
        return align as *mut u8;
    }
    let ptr = unsafe {
        if old_len == 0 {
            alloc(Layout::from_size_align_unchecked(new_len, align))
        } else {
            realloc(old_ptr, Layout::from_size_align_unchecked(old_len, align), new_len)
        }
    };
    if ptr.is_null() {
        handle_alloc_error(unsafe { Layout::from_size_align_unchecked(new_len, align) });
    }
    ptr
}
