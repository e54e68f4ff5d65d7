//! A small block of static TLS per OS thread for the per-OS-thread caches
//! of `perf::memory_pools`, reached through an address formed anew at
//! every use.
//!
//! Why not a `thread_local!`: a green thread that switches cooperatively
//! may resume on another host of its worker, and the compiler, which
//! treats the thread pointer as constant within a function, may compute a
//! `thread_local!`'s address once, before the switch, and use it after.
//! A cache touched through such an address is another OS thread's, while
//! that thread uses it (it happened: bench/README.md, "Memory pools against
//! the allocators"). The accessor below is an `asm!` block that is not
//! `pure`, so the compiler runs it exactly where it is written and can
//! neither reuse its result from an earlier call nor move it across a
//! switch; the address it returns must not be kept across one (the
//! contract of [`area`]). Being inline, it costs two or three instructions
//! where a `thread_local!` behind a never-inlined function cost a call.
//!
//! The block is defined once, in assembly, zero-filled, in the
//! initial-exec model like `preempt_word`.

/// Bytes in the block; its users check that their layout fits.
pub(crate) const AREA_BYTES: usize = 64;

core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",%nobits",
    ".p2align 4",
    ".globl __pmt_os_thread_area_v1",
    ".hidden __pmt_os_thread_area_v1",
    ".type __pmt_os_thread_area_v1,%object",
    ".size __pmt_os_thread_area_v1,64",
    "__pmt_os_thread_area_v1:",
    ".zero 64",
    ".popsection",
);

/// The calling OS thread's block: [`AREA_BYTES`] bytes, 16-aligned, all
/// zero when the OS thread starts.
///
/// The address is the calling OS thread's only until the caller next
/// switches (cooperatively, or to another host after a blocked-host
/// hand-off); code that may switch must call this again afterwards. An
/// asynchronous preemption does not count: the preempted green thread
/// keeps its OS thread until it resumes.
#[inline(always)]
pub(crate) fn area() -> *mut u8 {
    let a: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads the thread pointer (FS:0 holds it on Linux, for glibc
    // and musl alike) and the block's offset from the GOT; writes only the
    // output register and the flags.
    unsafe {
        core::arch::asm!(
            "mov {a}, qword ptr fs:[0]",
            "add {a}, qword ptr [rip + __pmt_os_thread_area_v1@GOTTPOFF]",
            a = out(reg) a,
            options(nostack),
        )
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reads TPIDR_EL0 and the block's offset from the GOT; writes
    // only the two registers named.
    unsafe {
        core::arch::asm!(
            "adrp {a}, :gottprel:__pmt_os_thread_area_v1",
            "ldr {a}, [{a}, :gottprel_lo12:__pmt_os_thread_area_v1]",
            "mrs {t}, tpidr_el0",
            "add {a}, {a}, {t}",
            a = out(reg) a,
            t = out(reg) _,
            options(nostack, preserves_flags),
        )
    };
    #[cfg(target_arch = "riscv64")]
    // SAFETY: reads tp and the block's offset from the GOT; writes only
    // the output register.
    unsafe {
        core::arch::asm!(
            "la.tls.ie {a}, __pmt_os_thread_area_v1",
            "add {a}, {a}, tp",
            a = out(reg) a,
            options(nostack, preserves_flags),
        )
    };
    a as *mut u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_os_thread_has_its_own_zeroed_block() {
        let here = area();
        assert_eq!(here as usize % 16, 0);
        assert_eq!(area(), here, "the same OS thread, the same block");
        // SAFETY: this OS thread's block, AREA_BYTES long; the test owns
        // its last byte (no pool cache reaches that far).
        unsafe { here.add(AREA_BYTES - 1).write(0x5a) };
        let there = std::thread::spawn(|| {
            let a = area();
            // SAFETY: as above, the new OS thread's own block.
            (a as usize, unsafe { a.add(AREA_BYTES - 1).read() })
        })
        .join()
        .unwrap();
        assert_ne!(there.0, here as usize);
        assert_eq!(there.1, 0, "a new OS thread's block starts zeroed");
        // SAFETY: as above.
        unsafe { here.add(AREA_BYTES - 1).write(0) };
    }
}
