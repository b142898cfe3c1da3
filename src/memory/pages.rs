//! Large allocations on pages of their own, which later allocations of any size take over without faulting them in again.
//!
//! glibc serves large blocks from its heap, where freed blocks of one size do not make room
//! for a larger one: an int8 AST's attention tensors (3.7 MB each) and its MLP product
//! (14.9 MB) never live at the same time, yet the heap held both, ~18 MB over the most ever
//! live at once. Here a block of [`LARGE`] bytes or more is a private anonymous mapping. A
//! freed block's pages stay in a pool of free segments, and a later request takes them:
//! part of one free segment when one is large enough, else free segments moved side by side
//! into a new mapping (`mremap`: page tables move, no byte is copied and no page faults), with
//! fresh pages only for what the pool lacks; when fresh pages come while the pool still holds
//! fragments (more than a block is built from), as many bytes of the smallest ones are
//! unmapped. So pool + live blocks never exceed the most that was ever live at once, and a
//! run's steady state faults nothing in.
//!
//! Each free segment lies within one kernel mapping (`mremap` moves from one mapping only): a
//! block built from several segments remembers them and gives them back one by one.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;
use std::sync::{Mutex, MutexGuard};

/// Blocks of this many bytes or more are pooled pages; smaller ones go to the system allocator.
pub const LARGE: usize = 1 << 20;
/// Pooled lengths are multiples of this (or of the page, if larger): blocks of nearly the
/// same size (a 1,214 × 768 tensor and its 1,216-row packed form) take the same pages, and
/// no freed block leaves a sliver of a few pages behind.
const GRANULE: usize = 64 << 10;
/// Free segments kept at most; one more is unmapped when freed.
const FREE_CAP: usize = 512;
/// Pooled blocks live at once at most; beyond it, a block is a mapping unmapped when freed.
const LIVE_CAP: usize = 512;
/// Segments a block is built from at most (the last one may be fresh pages).
const MAX_PIECES: usize = 16;

/// Pages `[addr, addr + len)`, all in one kernel mapping. Segments with the same tag that
/// touch are in the same mapping (a tag names a mapping as made, or a piece as moved; a
/// mapping split by a move leaves a hole between its parts), so they may be merged.
#[derive(Clone, Copy)]
struct Seg {
    addr: usize,
    len: usize,
    tag: u64,
}

/// A live block and the segments it is made of, in address order from `addr`.
#[derive(Clone, Copy)]
struct Block {
    addr: usize,
    n: usize,
    pieces: [(usize, u64); MAX_PIECES],
}

struct Pool {
    /// Whether freed blocks are kept (else unmapped at once).
    keeping: bool,
    free: [Seg; FREE_CAP],
    nfree: usize,
    live: [Block; LIVE_CAP],
    nlive: usize,
    tags: u64,
}

/// A global allocator: the system's for small blocks, pooled pages for large ones (Linux).
pub struct PagePool {
    pool: Mutex<Pool>,
}

impl Default for PagePool {
    fn default() -> Self {
        Self::new()
    }
}

impl PagePool {
    /// An empty pool.
    pub const fn new() -> Self {
        const NO_SEG: Seg = Seg {
            addr: 0,
            len: 0,
            tag: 0,
        };
        const NO_BLOCK: Block = Block {
            addr: 0,
            n: 0,
            pieces: [(0, 0); MAX_PIECES],
        };
        PagePool {
            pool: Mutex::new(Pool {
                keeping: true,
                free: [NO_SEG; FREE_CAP],
                nfree: 0,
                live: [NO_BLOCK; LIVE_CAP],
                nlive: 0,
                tags: 0,
            }),
        }
    }

    /// Unmaps every free segment, and from now on unmaps freed blocks at once (`keep` false:
    /// a model load, whose buffers come in every size and are not seen again) or keeps them.
    pub fn release_and_keep(&self, keep: bool) {
        let mut p = self.lock();
        p.keeping = keep;
        for s in &p.free[..p.nfree] {
            unmap(s.addr, s.len);
        }
        p.nfree = 0;
    }

    /// Bytes held in free segments.
    pub fn pooled_bytes(&self) -> usize {
        let p = self.lock();
        p.free[..p.nfree].iter().map(|s| s.len).sum()
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        // Nothing below panics while holding the lock; were it poisoned, its data is whole.
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A block of `len` bytes (a multiple of the page size) and how many of its first bytes
    /// are reused pages (the rest are fresh, hence zero).
    fn alloc_pages(&self, len: usize) -> Option<(usize, usize)> {
        let mut p = self.lock();
        if p.nlive == LIVE_CAP {
            return map(len).map(|a| (a, 0));
        }
        let fits = (0..p.nfree)
            .filter(|&i| p.free[i].len >= len)
            .min_by_key(|&i| p.free[i].len);
        if let Some(i) = fits {
            let s = p.free[i];
            p.take_front(i, len);
            let mut pieces = [(0, 0); MAX_PIECES];
            pieces[0] = (len, s.tag);
            p.add_live(Block {
                addr: s.addr,
                n: 1,
                pieces,
            });
            return Some((s.addr, len));
        }
        let base = map(len)?;
        let mut pieces = [(0, 0); MAX_PIECES];
        let (mut n, mut off) = (0, 0);
        while n < MAX_PIECES - 1 && off < len && p.nfree > 0 {
            let i = (0..p.nfree).max_by_key(|&i| p.free[i].len).unwrap_or(0);
            let s = p.free[i];
            let take = s.len.min(len - off);
            // SAFETY: the source lies in one mapping of ours that nothing uses; the target
            // range is part of the mapping just made, which MREMAP_FIXED replaces.
            let moved = unsafe {
                libc::mremap(
                    s.addr as *mut libc::c_void,
                    take,
                    take,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    (base + off) as *mut libc::c_void,
                )
            };
            if moved == libc::MAP_FAILED {
                break;
            }
            p.take_front(i, take);
            pieces[n] = (take, p.new_tag());
            n += 1;
            off += take;
        }
        if off < len {
            pieces[n] = (len - off, p.new_tag());
            n += 1;
            // Pages the pool still holds are fragments too many to assemble: as many bytes
            // of them leave as fresh ones came, so that pool + live blocks never grow while
            // the pool has pages (a run's steady state would otherwise creep up run by run).
            p.unmap_smallest(len - off);
        }
        p.add_live(Block {
            addr: base,
            n,
            pieces,
        });
        Some((base, off))
    }

    fn free_pages(&self, addr: usize, len: usize) {
        let mut p = self.lock();
        match (0..p.nlive).find(|&j| p.live[j].addr == addr) {
            Some(j) => {
                let b = p.live[j];
                p.nlive -= 1;
                p.live[j] = p.live[p.nlive];
                let mut a = addr;
                for &(len, tag) in &b.pieces[..b.n] {
                    p.keep(Seg { addr: a, len, tag });
                    a += len;
                }
            }
            // Made while the live table was full: a mapping of its own.
            None => unmap(addr, len),
        }
    }
}

impl Pool {
    fn new_tag(&mut self) -> u64 {
        self.tags += 1;
        self.tags
    }

    fn add_live(&mut self, b: Block) {
        self.live[self.nlive] = b;
        self.nlive += 1;
    }

    /// Takes `len` bytes off the front of free segment `i`.
    fn take_front(&mut self, i: usize, len: usize) {
        let s = &mut self.free[i];
        if s.len > len {
            s.addr += len;
            s.len -= len;
        } else {
            self.remove(i);
        }
    }

    /// Unmaps `bytes` of free segments (a multiple of the granule), smallest first, or all
    /// of them if they hold less.
    fn unmap_smallest(&mut self, mut bytes: usize) {
        while bytes > 0 && self.nfree > 0 {
            let i = (0..self.nfree)
                .min_by_key(|&i| self.free[i].len)
                .unwrap_or(0);
            let s = self.free[i];
            if s.len <= bytes {
                unmap(s.addr, s.len);
                self.remove(i);
                bytes -= s.len;
            } else {
                unmap(s.addr + s.len - bytes, bytes);
                self.free[i].len -= bytes;
                bytes = 0;
            }
        }
    }

    fn remove(&mut self, i: usize) {
        self.nfree -= 1;
        self.free[i] = self.free[self.nfree];
    }

    /// Adds a freed segment, merged with free neighbours of its mapping.
    fn keep(&mut self, mut s: Seg) {
        if !self.keeping {
            unmap(s.addr, s.len);
            return;
        }
        while let Some(i) = (0..self.nfree).find(|&i| {
            let f = self.free[i];
            f.tag == s.tag && (f.addr + f.len == s.addr || s.addr + s.len == f.addr)
        }) {
            let f = self.free[i];
            s = Seg {
                addr: s.addr.min(f.addr),
                len: s.len + f.len,
                tag: s.tag,
            };
            self.remove(i);
        }
        if self.nfree == FREE_CAP {
            unmap(s.addr, s.len);
        } else {
            self.free[self.nfree] = s;
            self.nfree += 1;
        }
    }
}

fn page_size() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf has no preconditions.
            let p = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
            PAGE.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

/// The pooled length of a block, or None for one the system allocator serves.
fn pooled_len(size: usize, align: usize) -> Option<usize> {
    let page = page_size();
    let granule = GRANULE.max(page);
    (size >= LARGE && align <= page).then(|| size.div_ceil(granule) * granule)
}

fn map(len: usize) -> Option<usize> {
    // SAFETY: a new private anonymous mapping; no existing memory is touched.
    let a = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (a != libc::MAP_FAILED).then_some(a as usize)
}

fn unmap(addr: usize, len: usize) {
    // SAFETY: the range is ours and free: nothing refers to it.
    unsafe { libc::munmap(addr as *mut libc::c_void, len) };
}

// SAFETY: large blocks are page-aligned mappings (the alignment asked is at most a page) of at
// least the size asked, each handed out once until freed; everything else is the system's.
unsafe impl GlobalAlloc for PagePool {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match pooled_len(layout.size(), layout.align()) {
            Some(len) => self
                .alloc_pages(len)
                .map_or(ptr::null_mut(), |(a, _)| a as *mut u8),
            // SAFETY: the caller's layout contract, passed on.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match pooled_len(layout.size(), layout.align()) {
            Some(len) => match self.alloc_pages(len) {
                Some((a, reused)) => {
                    // SAFETY: the first `reused` bytes of the block are ours; fresh pages
                    // are zero already.
                    unsafe { ptr::write_bytes(a as *mut u8, 0, reused) };
                    a as *mut u8
                }
                None => ptr::null_mut(),
            },
            // SAFETY: as in alloc.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match pooled_len(layout.size(), layout.align()) {
            Some(len) => self.free_pages(ptr as usize, len),
            // SAFETY: as in alloc; this block came from the system allocator.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (old, new) = (
            pooled_len(layout.size(), layout.align()),
            pooled_len(new_size, layout.align()),
        );
        if old.is_none() && new.is_none() {
            // SAFETY: as in alloc; the block came from the system allocator.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if old.is_some() && old == new {
            return ptr;
        }
        // SAFETY: `new_size` with the block's alignment is a valid layout (GlobalAlloc's
        // contract for realloc); the old block is valid for its size and freed once.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let out = self.alloc(new_layout);
            if !out.is_null() {
                ptr::copy_nonoverlapping(ptr, out, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn layout(n: usize) -> Layout {
        Layout::from_size_align(n, 128).expect("layout")
    }

    /// Pages of `[a, a + len)` resident in memory.
    fn resident_pages(a: *mut u8, len: usize) -> usize {
        let page = page_size();
        let mut v = vec![0u8; len.div_ceil(page)];
        // SAFETY: the range is a mapping of ours; `v` has one byte per page.
        let rc = unsafe { libc::mincore(a as *mut libc::c_void, len, v.as_mut_ptr()) };
        assert_eq!(rc, 0);
        v.iter().filter(|&&b| b & 1 == 1).count()
    }

    /// Writes a pattern every 997 bytes and at the last byte (so every page is touched).
    fn fill(p: *mut u8, n: usize, seed: u8) {
        for i in (0..n).step_by(997).chain([n - 1]) {
            // SAFETY: within the block of n bytes.
            unsafe { *p.add(i) = seed.wrapping_add((i / 997) as u8) };
        }
    }

    fn check(p: *mut u8, n: usize, seed: u8) -> bool {
        // SAFETY: within the block of n bytes.
        (0..n)
            .step_by(997)
            .all(|i| unsafe { *p.add(i) } == seed.wrapping_add((i / 997) as u8))
    }

    #[test]
    fn freed_blocks_become_one_larger_block_without_new_pages() {
        let pool = PagePool::new();
        let page = page_size();
        // SAFETY: each block is used within its size and freed once, with its layout.
        unsafe {
            // Lengths round up to the granule: a freed block's tail never stays behind alone.
            assert_eq!(
                pooled_len(3 * MIB + 5, 128),
                Some(3 * MIB + GRANULE.max(page))
            );
            let small: Vec<*mut u8> = (0..4).map(|_| pool.alloc(layout(3 * MIB))).collect();
            for (k, &p) in small.iter().enumerate() {
                assert!(!p.is_null() && (p as usize).is_multiple_of(page));
                fill(p, 3 * MIB, k as u8);
            }
            for &p in &small {
                pool.dealloc(p, layout(3 * MIB));
            }
            let pooled = pool.pooled_bytes();
            assert_eq!(pooled, 12 * MIB);
            // Larger than any free segment: built from the four, every page already resident.
            let big = pool.alloc(layout(12 * MIB));
            assert!(!big.is_null());
            assert_eq!(resident_pages(big, 12 * MIB), 12 * MIB / page);
            assert_eq!(pool.pooled_bytes(), pooled - 12 * MIB);
            fill(big, 12 * MIB, 9);
            assert!(check(big, 12 * MIB, 9));
            // Freed, it gives its segments back: a small block is carved from them again.
            pool.dealloc(big, layout(12 * MIB));
            assert_eq!(pool.pooled_bytes(), pooled);
            let again = pool.alloc(layout(2 * MIB));
            assert_eq!(resident_pages(again, 2 * MIB), 2 * MIB / page);
            fill(again, 2 * MIB, 3);
            assert!(check(again, 2 * MIB, 3));
            pool.dealloc(again, layout(2 * MIB));
            pool.release_and_keep(true);
            assert_eq!(pool.pooled_bytes(), 0);
        }
    }

    #[test]
    fn pool_and_live_blocks_never_exceed_the_most_ever_live() {
        // Blocks of changing sizes freed in changing orders fragment the pool; what it holds
        // plus what is live must still stay within the most that was ever live at once.
        let pool = PagePool::new();
        let mut noise = crate::noise::Noise::new(12345);
        let mut next = move || (noise.next_u64() >> 33) as usize;
        let (mut live, mut most): (Vec<(*mut u8, usize)>, usize) = (Vec::new(), 0);
        let held = |v: &Vec<(*mut u8, usize)>| -> usize {
            v.iter()
                .map(|&(_, n)| pooled_len(n, 128).expect("pooled"))
                .sum()
        };
        // SAFETY: as above.
        unsafe {
            for _ in 0..400 {
                if live.len() < 12 && (live.is_empty() || next() % 3 != 0) {
                    let n = MIB + next() % (15 * MIB);
                    let p = pool.alloc(layout(n));
                    assert!(!p.is_null());
                    fill(p, n, 5);
                    live.push((p, n));
                    most = most.max(held(&live));
                } else {
                    let (p, n) = live.swap_remove(next() % live.len());
                    assert!(check(p, n, 5));
                    pool.dealloc(p, layout(n));
                }
                assert!(pool.pooled_bytes() + held(&live) <= most);
            }
            for (p, n) in live {
                pool.dealloc(p, layout(n));
            }
            pool.release_and_keep(true);
        }
    }

    #[test]
    fn what_the_pool_lacks_comes_fresh_and_zeroed() {
        let pool = PagePool::new();
        // SAFETY: as above.
        unsafe {
            let a = pool.alloc(layout(2 * MIB));
            fill(a, 2 * MIB, 7);
            pool.dealloc(a, layout(2 * MIB));
            // 2 MiB reused (dirty, so zeroed here) and 3 MiB fresh.
            let z = pool.alloc_zeroed(layout(5 * MIB));
            let s = std::slice::from_raw_parts(z, 5 * MIB);
            assert!(s.iter().all(|&b| b == 0));
            assert_eq!(pool.pooled_bytes(), 0);
            pool.dealloc(z, layout(5 * MIB));
            assert_eq!(pool.pooled_bytes(), 5 * MIB);
            pool.release_and_keep(true);
        }
    }

    #[test]
    fn realloc_keeps_the_contents_across_both_allocators() {
        let pool = PagePool::new();
        // SAFETY: as above; each realloc's result replaces the block it was given.
        unsafe {
            let p = pool.alloc(layout(1000));
            fill(p, 1000, 1);
            let p = pool.realloc(p, layout(1000), 3 * MIB);
            assert!(check(p, 1000, 1));
            fill(p, 3 * MIB, 2);
            let p = pool.realloc(p, layout(3 * MIB), 5 * MIB);
            assert!(check(p, 3 * MIB, 2));
            let p = pool.realloc(p, layout(5 * MIB), 4000);
            assert!(check(p, 4000, 2));
            pool.dealloc(p, layout(4000));
            pool.release_and_keep(true);
        }
    }

    #[test]
    fn small_or_overaligned_blocks_are_the_systems() {
        let pool = PagePool::new();
        let big_align = Layout::from_size_align(2 * MIB, 2 * page_size()).expect("layout");
        // SAFETY: as above.
        unsafe {
            for l in [layout(MIB - 1), big_align] {
                let p = pool.alloc(l);
                assert!(!p.is_null() && (p as usize).is_multiple_of(l.align()));
                fill(p, l.size(), 4);
                pool.dealloc(p, l);
            }
        }
        assert_eq!(pool.pooled_bytes(), 0);
    }
}
