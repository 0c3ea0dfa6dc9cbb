//! A hierarchical timer wheel: O(1) insert and cancel, amortised O(1) expiry.
//!
//! # Levels
//!
//! Time is counted in whole milliseconds on the wheel's own clock, which
//! starts at 0 and only moves forward, through [`Wheel::poll`]. The wheel has
//! six levels of 64 slots. A slot on level `L` spans `64^L` ms, so the whole
//! level spans `64^(L + 1)` ms:
//!
//! ```text
//! level   slot width      level range
//!   0     1 ms            64 ms
//!   1     64 ms           ~4.1 s
//!   2     ~4.1 s          ~4.4 min
//!   3     ~4.4 min        ~4.7 h
//!   4     ~4.7 h          ~12.4 days
//!   5     ~12.4 days      ~2.2 years
//! ```
//!
//! Deadlines more than `MAX_DURATION` (`2^36 - 1` ms, about 2.2 years) after
//! the wheel's current time are clamped to that distance: such an entry fires
//! early, and its owner is expected to compare against its own deadline and
//! insert it again.
//!
//! # Slot math
//!
//! Let `elapsed` be the wheel's current time and `d > elapsed` a deadline. The
//! level is chosen by the highest bit in which the two differ (bit `b` of
//! `(elapsed ^ d) | 63`, level `min(b / 6, 5)`), and the slot on that level is
//! bits `6L .. 6L + 6` of `d`. On levels 0 to 4 this means `d` lies in the
//! same `64^(L + 1)`-aligned block as `elapsed` but in a later slot than the
//! one `elapsed` is in: an entry never sits in its level's current slot. Level
//! 5 is a ring: a deadline near the far end of the range may cross a `2^36`
//! boundary, but the clamp keeps it at most 64 slots ahead, so a level 5 entry
//! in the current slot is exactly one turn ahead.
//!
//! Every level keeps a `u64` bitmap of its non-empty slots. Rotating it so
//! that the slot after the current one becomes bit 0 and counting trailing
//! zeros gives the distance to the next occupied slot in a few instructions.
//! Since the entries of a level all lie before the next slot boundary of the
//! level above, the lowest non-empty level always holds the earliest slot.
//!
//! # Cascading
//!
//! [`Wheel::poll`] repeatedly takes the earliest occupied slot that starts no
//! later than `now`, moves `elapsed` to the slot's start and re-files each of
//! its entries: an entry whose deadline is that start fires; any other now
//! agrees with `elapsed` on all bits from the slot's level up, so it lands on
//! a strictly lower level. An entry is therefore re-filed at most five times
//! before it reaches level 0, where a slot's start is its exact deadline. Empty
//! time costs nothing: polling jumps straight from one occupied slot to the
//! next, so advancing years with a handful of timers takes a handful of steps.
//!
//! # Why `next_expiration` is a lower bound
//!
//! [`Wheel::next_expiration`] reports the start of the earliest occupied slot.
//! On level 0 that is the exact deadline of its entries; on a higher level the
//! entries lie somewhere in `start .. start + width`, so the start is never
//! later than any of their deadlines, but reaching it may only cascade them to
//! a lower level. A caller that sleeps until `next_expiration`, polls and asks
//! again therefore never oversleeps, and wakes early at most once per level
//! on the way down. Entries that were already due when inserted wait on the
//! pending list instead, and `next_expiration` then reports a time no later
//! than their deadlines, hence at or before the wheel's current time.
//!
//! # Storage
//!
//! Entries live in a `Vec` and are threaded on intrusive doubly-linked lists
//! by `u32` index: one list per slot plus a pending list for deadlines that
//! had already passed when they were inserted (returned by the next poll).
//! Freed entries form a singly-linked free list and are reused. Each entry has
//! a generation, bumped whenever it is freed; a [`Key`] carries the generation
//! it was issued with, so keys of entries that fired or were removed are
//! recognised as stale even after their index has been reused (until the
//! generation of that one index wraps around after `2^32` reuses).

use std::fmt;

/// Bits of a deadline that select the slot within one level.
const SLOT_BITS: u32 = 6;

/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;

/// Number of levels.
const LEVELS: usize = 6;

/// The farthest a deadline may lie after the wheel's current time; later
/// deadlines are clamped to this distance.
const MAX_DURATION: u64 = (1 << (SLOT_BITS as usize * LEVELS)) - 1;

/// List number of the pending list; lists `0 .. PENDING` are the slots,
/// numbered `level * SLOTS + slot`.
const PENDING: usize = LEVELS * SLOTS;

/// Number of lists: every slot plus the pending list.
const LISTS: usize = PENDING + 1;

/// The null link.
const NIL: u32 = u32::MAX;

/// `Entry::list` of a free entry.
const NO_LIST: u16 = u16::MAX;

/// Identifies an entry in a [`Wheel`].
///
/// A key stays valid until its entry is removed or fires; after that every
/// lookup with it fails, even once the entry's storage has been reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Key {
    index: u32,
    generation: u32,
}

/// One storage cell: a live timer, or a link in the free list.
struct Entry<T> {
    /// `Some` while the entry is live.
    value: Option<T>,
    /// The (clamped) deadline of a live entry.
    deadline: u64,
    /// Previous entry in the same list.
    prev: u32,
    /// Next entry in the same list, or in the free list.
    next: u32,
    /// Bumped each time the entry is freed.
    generation: u32,
    /// The list holding a live entry; `NO_LIST` when free.
    list: u16,
}

/// Head and tail of a doubly-linked list of entries.
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

/// A hierarchical timer wheel holding values of type `T` (typically wakers),
/// each with a millisecond deadline.
pub(crate) struct Wheel<T> {
    /// The wheel's current time in ms: every entry outside the pending list
    /// has a later deadline.
    elapsed: u64,
    /// Storage, live and free.
    entries: Vec<Entry<T>>,
    /// Head of the free list, linked through `Entry::next`.
    free: u32,
    /// Number of live entries.
    len: usize,
    /// The slot lists, then the pending list.
    lists: [List; LISTS],
    /// Per level, bit `s` is set when slot `s` is non-empty.
    occupied: [u64; LEVELS],
    /// While the pending list is non-empty, no later than the deadline of any
    /// entry on it (exact unless the earliest one was removed).
    pending_floor: u64,
}

impl<T> Wheel<T> {
    /// Creates an empty wheel whose clock reads 0.
    pub(crate) fn new() -> Wheel<T> {
        Wheel {
            elapsed: 0,
            entries: Vec::new(),
            free: NIL,
            len: 0,
            lists: [List::EMPTY; LISTS],
            occupied: [0; LEVELS],
            pending_floor: 0,
        }
    }

    /// The wheel's current time in ms: the latest `now` passed to
    /// [`poll`](Wheel::poll).
    #[allow(dead_code)] // part of the API even where a caller has no use for it
    pub(crate) fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Number of entries that have neither fired nor been removed.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the wheel holds no entries.
    #[allow(dead_code)] // part of the API even where a caller has no use for it
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `value` to fire at `deadline` (ms on the wheel's clock) and
    /// returns its key. O(1).
    ///
    /// A deadline that is not after [`elapsed`](Wheel::elapsed) fires at the
    /// next [`poll`](Wheel::poll), whatever its `now`. A deadline more than
    /// about 2.2 years ahead is clamped to that distance.
    ///
    /// # Panics
    ///
    /// If the wheel already holds `u32::MAX` entries.
    pub(crate) fn insert(&mut self, deadline: u64, value: T) -> Key {
        let deadline = deadline.min(self.elapsed.saturating_add(MAX_DURATION));
        let index = self.allocate(deadline, value);
        let list = self.list_for(deadline);
        if list == PENDING {
            self.pending_floor = if self.lists[PENDING].head == NIL {
                deadline
            } else {
                self.pending_floor.min(deadline)
            };
        }
        self.push_back(list, index);
        self.len += 1;
        Key {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    /// Removes the entry of `key` and returns its value, or `None` if the key
    /// is stale (the entry already fired or was removed). O(1).
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let index = self.live_index(key)?;
        self.unlink(index);
        Some(self.release(index))
    }

    /// The value of a live entry, for updating it in place (say, to replace a
    /// stored waker).
    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let index = self.live_index(key)?;
        self.entries[index as usize].value.as_mut()
    }

    /// The deadline of a live entry, after clamping.
    #[allow(dead_code)] // part of the API even where a caller has no use for it
    pub(crate) fn deadline(&self, key: Key) -> Option<u64> {
        let index = self.live_index(key)?;
        Some(self.entries[index as usize].deadline)
    }

    /// The earliest time at which [`poll`](Wheel::poll) may return something,
    /// or `None` if the wheel is empty.
    ///
    /// If an entry is already due (its deadline had passed when it was
    /// inserted), this is a time at or before [`elapsed`](Wheel::elapsed) and
    /// no later than that entry's deadline: poll at once. Otherwise it is the
    /// start of the earliest occupied slot: the exact deadline for a slot on
    /// level 0, a lower bound for higher levels (polling then only moves
    /// entries closer, and the next call returns a later, tighter time).
    /// Either way it is never later than the earliest deadline in the wheel.
    pub(crate) fn next_expiration(&self) -> Option<u64> {
        if self.lists[PENDING].head != NIL {
            return Some(self.pending_floor);
        }
        self.next_slot().map(|(_, start)| start)
    }

    /// Advances the wheel's clock to `now` and appends to `expired` the value
    /// of every entry whose deadline is at or before `now`; their keys become
    /// stale.
    ///
    /// Entries that were already due when inserted are returned even if `now`
    /// is behind the clock, which never moves backwards. The cost is
    /// proportional to the number of occupied slots passed, not to the time
    /// advanced, and each entry is moved between levels at most five times
    /// over its life.
    pub(crate) fn poll(&mut self, now: u64, expired: &mut Vec<T>) {
        let mut index = self.take_list(PENDING);
        while index != NIL {
            let next = self.entries[index as usize].next;
            expired.push(self.release(index));
            index = next;
        }

        while let Some((list, start)) = self.next_slot() {
            if start > now {
                break;
            }
            debug_assert!(start > self.elapsed);
            self.elapsed = start;
            let mut index = self.take_list(list);
            while index != NIL {
                let entry = &self.entries[index as usize];
                let (next, deadline) = (entry.next, entry.deadline);
                if deadline <= start {
                    expired.push(self.release(index));
                } else {
                    let lower = self.list_for(deadline);
                    debug_assert!(lower / SLOTS < list / SLOTS);
                    self.push_back(lower, index);
                }
                index = next;
            }
        }

        self.elapsed = self.elapsed.max(now);
    }

    /// The index of the entry of `key`, if it is live.
    fn live_index(&self, key: Key) -> Option<u32> {
        let entry = self.entries.get(key.index as usize)?;
        (entry.generation == key.generation && entry.value.is_some()).then_some(key.index)
    }

    /// Takes a free entry (or grows the storage) and fills it in, unlinked.
    fn allocate(&mut self, deadline: u64, value: T) -> u32 {
        if self.free != NIL {
            let index = self.free;
            let entry = &mut self.entries[index as usize];
            self.free = entry.next;
            entry.value = Some(value);
            entry.deadline = deadline;
            index
        } else {
            let index = self.entries.len();
            assert!(index < NIL as usize, "timer wheel is full");
            self.entries.push(Entry {
                value: Some(value),
                deadline,
                prev: NIL,
                next: NIL,
                generation: 0,
                list: NO_LIST,
            });
            index as u32
        }
    }

    /// Frees a live entry that is no longer on any list and returns its value.
    fn release(&mut self, index: u32) -> T {
        let entry = &mut self.entries[index as usize];
        let value = entry.value.take().expect("released a free timer entry");
        entry.generation = entry.generation.wrapping_add(1);
        entry.list = NO_LIST;
        entry.prev = NIL;
        entry.next = self.free;
        self.free = index;
        self.len -= 1;
        value
    }

    /// The list an entry with this deadline belongs on, given `elapsed`.
    fn list_for(&self, deadline: u64) -> usize {
        if deadline <= self.elapsed {
            PENDING
        } else {
            let level = level_for(self.elapsed, deadline);
            level * SLOTS + slot_for(deadline, level)
        }
    }

    /// Appends an unlinked entry to `list`, marking its slot occupied.
    fn push_back(&mut self, list: usize, index: u32) {
        let tail = self.lists[list].tail;
        let entry = &mut self.entries[index as usize];
        entry.prev = tail;
        entry.next = NIL;
        entry.list = list as u16;
        if tail == NIL {
            self.lists[list].head = index;
            if list < PENDING {
                self.occupied[list / SLOTS] |= 1 << (list % SLOTS);
            }
        } else {
            self.entries[tail as usize].next = index;
        }
        self.lists[list].tail = index;
    }

    /// Unlinks a live entry from its list, clearing the slot's bit if the
    /// list becomes empty.
    fn unlink(&mut self, index: u32) {
        let entry = &self.entries[index as usize];
        let (list, prev, next) = (entry.list as usize, entry.prev, entry.next);
        if prev == NIL {
            self.lists[list].head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[list].tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
        if prev == NIL && next == NIL && list < PENDING {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
    }

    /// Empties `list` and returns the head of its former chain, which the
    /// caller walks through `Entry::next` (reading each link before re-filing
    /// or freeing the entry).
    fn take_list(&mut self, list: usize) -> u32 {
        let head = std::mem::replace(&mut self.lists[list], List::EMPTY).head;
        if list < PENDING {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
        head
    }

    /// The earliest occupied slot, as its list number and start time.
    ///
    /// Only slots after the one `elapsed` is in are considered: an entry is
    /// never filed in its level's current slot, except on level 5, where it
    /// then lies one full turn ahead.
    fn next_slot(&self) -> Option<(usize, u64)> {
        let level = self.occupied.iter().position(|&bits| bits != 0)?;
        let shift = level as u32 * SLOT_BITS;
        // Absolute number of the slot `elapsed` is in, at this level's width.
        let current = self.elapsed >> shift;
        let after = ((current + 1) % SLOTS as u64) as u32;
        let distance = u64::from(self.occupied[level].rotate_right(after).trailing_zeros()) + 1;
        let slot = current + distance;
        Some((
            level * SLOTS + (slot % SLOTS as u64) as usize,
            slot << shift,
        ))
    }
}

/// The level for `deadline` (later than `elapsed`): the level whose slot bits
/// hold the highest bit in which the two differ, capped at the top level.
fn level_for(elapsed: u64, deadline: u64) -> usize {
    let differing = elapsed ^ deadline;
    (1..LEVELS)
        .map(|level| usize::from(differing >> (level as u32 * SLOT_BITS) != 0))
        .sum()
}

/// The slot for `deadline` on `level`.
fn slot_for(deadline: u64, level: usize) -> usize {
    ((deadline >> (level as u32 * SLOT_BITS)) % SLOTS as u64) as usize
}

impl<T> Default for Wheel<T> {
    fn default() -> Wheel<T> {
        Wheel::new()
    }
}

impl<T> fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel")
            .field("elapsed", &self.elapsed)
            .field("len", &self.len)
            .field("next_expiration", &self.next_expiration())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
impl<T> Wheel<T> {
    /// Walks every list, the bitmaps and the free list, and panics on any
    /// inconsistency.
    pub(crate) fn check_invariants(&self) {
        let mut live = 0;
        for (list, chain) in self.lists.iter().enumerate() {
            if list < PENDING {
                let bit = self.occupied[list / SLOTS] >> (list % SLOTS) & 1;
                assert_eq!(bit == 1, chain.head != NIL, "bitmap of list {list}");
            }
            assert_eq!(chain.head == NIL, chain.tail == NIL, "ends of list {list}");
            let mut prev = NIL;
            let mut index = chain.head;
            while index != NIL {
                let entry = &self.entries[index as usize];
                assert!(entry.value.is_some(), "free entry {index} on list {list}");
                assert_eq!(entry.list as usize, list, "list of entry {index}");
                assert_eq!(entry.prev, prev, "back link of entry {index}");
                if list == PENDING {
                    assert!(entry.deadline <= self.elapsed, "pending entry {index}");
                    assert!(self.pending_floor <= entry.deadline, "pending floor");
                } else {
                    assert!(entry.deadline > self.elapsed, "overdue entry {index}");
                    assert!(
                        entry.deadline - self.elapsed <= MAX_DURATION,
                        "entry {index} beyond range"
                    );
                    let level = level_for(self.elapsed, entry.deadline);
                    let slot = level * SLOTS + slot_for(entry.deadline, level);
                    assert_eq!(slot, list, "slot of entry {index}");
                }
                live += 1;
                assert!(live <= self.entries.len(), "cycle in list {list}");
                prev = index;
                index = entry.next;
            }
            assert_eq!(chain.tail, prev, "tail of list {list}");
        }
        assert_eq!(live, self.len, "live entries");

        let mut free = 0;
        let mut index = self.free;
        while index != NIL {
            let entry = &self.entries[index as usize];
            assert!(entry.value.is_none(), "live entry {index} on free list");
            assert_eq!(entry.list, NO_LIST, "list of free entry {index}");
            free += 1;
            assert!(free <= self.entries.len(), "cycle in free list");
            index = entry.next;
        }
        assert_eq!(live + free, self.entries.len(), "entries lost");

        match self.next_expiration() {
            None => assert_eq!(self.len, 0, "next expiration of a non-empty wheel"),
            Some(next) if self.lists[PENDING].head == NIL => {
                assert!(next > self.elapsed, "next expiration in the past");
            }
            Some(next) => assert!(next <= self.elapsed, "due entry not reported"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    /// xorshift64*: small, fast and good enough for test inputs.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.max(1))
        }

        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// Uniform-ish in `0..n` (`n > 0`).
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// A distance whose magnitude is spread over all levels and beyond.
        fn distance(&mut self) -> u64 {
            let bits = self.below(40);
            self.next() & ((1 << bits) - 1)
        }
    }

    fn poll<T>(wheel: &mut Wheel<T>, now: u64) -> Vec<T> {
        let mut expired = Vec::new();
        wheel.poll(now, &mut expired);
        expired
    }

    #[test]
    fn empty_wheel() {
        let mut wheel = Wheel::<u32>::new();
        assert!(wheel.is_empty());
        assert_eq!(wheel.len(), 0);
        assert_eq!(wheel.elapsed(), 0);
        assert_eq!(wheel.next_expiration(), None);
        assert!(poll(&mut wheel, 1 << 40).is_empty());
        assert_eq!(wheel.elapsed(), 1 << 40);
        wheel.check_invariants();
    }

    #[test]
    fn level_and_slot_math() {
        assert_eq!(level_for(0, 1), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(0, 4095), 1);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(0, (1 << 30) - 1), 4);
        assert_eq!(level_for(0, 1 << 30), 5);
        assert_eq!(level_for(0, MAX_DURATION), 5);
        // Across a level-1 boundary, however close, the level is 1.
        assert_eq!(level_for(63, 64), 1);
        assert_eq!(level_for(100, 120), 0);
        // Across a 2^36 boundary: top level.
        assert_eq!(level_for((1 << 36) - 1, 1 << 36), 5);
        assert_eq!(slot_for(0x3f, 0), 63);
        assert_eq!(slot_for(0x40, 0), 0);
        assert_eq!(slot_for(0x40, 1), 1);
        assert_eq!(slot_for(4096 * 5 + 7, 2), 5);
        assert_eq!(slot_for(1 << 36, 5), 0);
    }

    #[test]
    fn insert_get_deadline_remove() {
        let mut wheel = Wheel::new();
        let a = wheel.insert(10, "a");
        let b = wheel.insert(5000, "b");
        assert_eq!(wheel.len(), 2);
        assert_eq!(wheel.deadline(a), Some(10));
        assert_eq!(wheel.deadline(b), Some(5000));
        *wheel.get_mut(b).unwrap() = "B";
        assert_eq!(wheel.remove(b), Some("B"));
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.next_expiration(), Some(10));
        assert_eq!(poll(&mut wheel, 9), Vec::<&str>::new());
        assert_eq!(poll(&mut wheel, 10), vec!["a"]);
        assert!(wheel.is_empty());
        wheel.check_invariants();
    }

    #[test]
    fn next_expiration_is_slot_start_then_exact() {
        let mut wheel = Wheel::new();
        wheel.insert(5000, ());
        // Level 2, slot 1: starts at 4096.
        assert_eq!(wheel.next_expiration(), Some(4096));
        assert!(poll(&mut wheel, 4096).is_empty());
        // Cascaded to level 1: 5000 = 78 * 64 + 8, slot starts at 4992.
        assert_eq!(wheel.next_expiration(), Some(4992));
        assert!(poll(&mut wheel, 4992).is_empty());
        assert_eq!(wheel.next_expiration(), Some(5000));
        assert!(poll(&mut wheel, 4999).is_empty());
        assert_eq!(poll(&mut wheel, 5000).len(), 1);
        assert_eq!(wheel.next_expiration(), None);
        wheel.check_invariants();
    }

    #[test]
    fn past_deadlines_are_pending() {
        let mut wheel = Wheel::new();
        poll(&mut wheel, 1000);
        let a = wheel.insert(3, 'a');
        wheel.insert(1000, 'b');
        wheel.insert(1001, 'c');
        assert_eq!(wheel.next_expiration(), Some(3));
        assert_eq!(wheel.deadline(a), Some(3));
        wheel.check_invariants();
        // A poll behind the clock still returns what is due, in order.
        assert_eq!(poll(&mut wheel, 0), vec!['a', 'b']);
        assert_eq!(wheel.elapsed(), 1000);
        assert_eq!(wheel.next_expiration(), Some(1001));
        assert_eq!(poll(&mut wheel, 1001), vec!['c']);
        wheel.check_invariants();
    }

    #[test]
    fn stale_keys() {
        let mut wheel = Wheel::new();
        // After firing.
        let fired = wheel.insert(5, 1);
        assert_eq!(poll(&mut wheel, 5), vec![1]);
        assert_eq!(wheel.remove(fired), None);
        assert_eq!(wheel.get_mut(fired), None);
        assert_eq!(wheel.deadline(fired), None);
        // After removal, twice.
        let removed = wheel.insert(50, 2);
        assert_eq!(wheel.remove(removed), Some(2));
        assert_eq!(wheel.remove(removed), None);
        // After the index is reused by another entry.
        let reused = wheel.insert(60, 3);
        assert_eq!(reused.index, removed.index);
        assert_ne!(reused, removed);
        assert_eq!(wheel.remove(removed), None);
        assert_eq!(wheel.remove(fired), None);
        assert_eq!(wheel.get_mut(removed), None);
        assert_eq!(wheel.deadline(reused), Some(60));
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.remove(reused), Some(3));
        // An index never handed out.
        let bogus = Key {
            index: 1000,
            generation: 0,
        };
        assert_eq!(wheel.remove(bogus), None);
        assert!(wheel.is_empty());
        wheel.check_invariants();
    }

    #[test]
    fn level_boundaries() {
        let mut distances = vec![1, 2];
        for level in 1..LEVELS as u32 {
            let edge = 1u64 << (level * SLOT_BITS);
            distances.extend([edge - 1, edge, edge + 1]);
        }
        distances.extend([MAX_DURATION - 1, MAX_DURATION]);
        for start in [0, 12_345, (1 << 36) - 3, (1 << 36) + (1 << 30) - 1, 5 << 36] {
            for &distance in &distances {
                let mut wheel = Wheel::new();
                poll(&mut wheel, start);
                let deadline = start + distance;
                let key = wheel.insert(deadline, distance);
                assert_eq!(wheel.deadline(key), Some(deadline));
                wheel.check_invariants();
                // Walk down the levels: every wake-up is a lower bound.
                let mut wakes = 0;
                loop {
                    let next = wheel.next_expiration().unwrap();
                    assert!(next <= deadline, "{start} + {distance}: woke at {next}");
                    if next == deadline {
                        break;
                    }
                    assert!(poll(&mut wheel, next).is_empty());
                    wheel.check_invariants();
                    wakes += 1;
                }
                assert!(wakes < LEVELS, "{start} + {distance}: {wakes} early wakes");
                assert!(poll(&mut wheel, deadline - 1).is_empty());
                assert_eq!(poll(&mut wheel, deadline), vec![distance]);
                assert!(wheel.is_empty());
                wheel.check_invariants();
            }
        }
    }

    #[test]
    fn far_deadlines_are_clamped() {
        let mut wheel = Wheel::new();
        poll(&mut wheel, 777);
        let far = wheel.insert(777 + MAX_DURATION + 1, 'a');
        let farthest = wheel.insert(u64::MAX, 'b');
        assert_eq!(wheel.deadline(far), Some(777 + MAX_DURATION));
        assert_eq!(wheel.deadline(farthest), Some(777 + MAX_DURATION));
        wheel.check_invariants();
        assert!(poll(&mut wheel, 776 + MAX_DURATION).is_empty());
        wheel.check_invariants();
        assert_eq!(poll(&mut wheel, 777 + MAX_DURATION), vec!['a', 'b']);
        wheel.check_invariants();
    }

    #[test]
    fn clock_near_the_end_of_time() {
        let mut wheel = Wheel::new();
        poll(&mut wheel, u64::MAX - 100);
        wheel.insert(u64::MAX - 50, 1);
        wheel.insert(u64::MAX, 2);
        wheel.check_invariants();
        assert_eq!(poll(&mut wheel, u64::MAX - 50), vec![1]);
        assert_eq!(poll(&mut wheel, u64::MAX), vec![2]);
        wheel.insert(u64::MAX, 3);
        assert_eq!(wheel.next_expiration(), Some(u64::MAX));
        assert_eq!(poll(&mut wheel, u64::MAX), vec![3]);
        wheel.check_invariants();
    }

    #[test]
    fn far_future_poll_fires_everything_once() {
        let mut rng = Rng::new(7);
        for now in [MAX_DURATION, 1 << 50, u64::MAX] {
            let mut wheel = Wheel::new();
            for id in 0..5000 {
                wheel.insert(rng.distance(), id);
            }
            let mut fired = poll(&mut wheel, now);
            fired.sort_unstable();
            assert_eq!(fired, (0..5000).collect::<Vec<_>>());
            assert!(wheel.is_empty());
            assert_eq!(wheel.next_expiration(), None);
            wheel.check_invariants();
            assert!(poll(&mut wheel, now).is_empty());
        }
    }

    #[test]
    fn poll_output_is_in_deadline_order() {
        let mut rng = Rng::new(11);
        let mut wheel = Wheel::new();
        let deadlines: Vec<u64> = (0..5000).map(|_| rng.distance()).collect();
        for (id, &deadline) in deadlines.iter().enumerate() {
            wheel.insert(deadline, id);
        }
        let fired = poll(&mut wheel, MAX_DURATION);
        assert!(fired.windows(2).all(
            |pair| deadlines[pair[0]].min(MAX_DURATION) <= deadlines[pair[1]].min(MAX_DURATION)
        ));
    }

    #[test]
    fn years_of_empty_time_are_skipped() {
        let mut wheel = Wheel::new();
        let mut now = 0;
        // Each poll crosses ~2 years; the timers re-arm as they fire.
        for round in 0..10_000u64 {
            for id in 0..4 {
                wheel.insert(now + MAX_DURATION - id * 1_000_003 - round % 77, id);
            }
            now += MAX_DURATION;
            assert_eq!(poll(&mut wheel, now).len(), 4);
        }
        assert!(wheel.is_empty());
        wheel.check_invariants();
    }

    #[test]
    fn random_deadlines_fire_once_in_order() {
        let mut rng = Rng::new(0x5eed);
        let mut wheel = Wheel::new();
        let count = 10_000;
        let mut deadlines = Vec::with_capacity(count);
        for id in 0..count {
            // Mostly within minutes, some up to days.
            let deadline = match rng.below(10) {
                0 => rng.below(1 << 30),
                1..=3 => rng.below(1 << 16),
                _ => rng.below(1 << 22),
            };
            deadlines.push(deadline);
            let key = wheel.insert(deadline, id);
            assert_eq!(wheel.deadline(key), Some(deadline));
        }
        wheel.check_invariants();

        let mut fired = vec![false; count];
        let mut fired_count = 0;
        let mut previous = 0;
        let mut now = 0;
        let mut polls = 0;
        while fired_count < count {
            let step = match rng.below(8) {
                0 => 0,
                1..=5 => rng.below(1 << 10),
                6 => rng.below(1 << 16),
                _ => rng.below(1 << 24),
            };
            now += step;
            if let Some(next) = wheel.next_expiration() {
                let earliest = (0..count)
                    .filter(|&id| !fired[id])
                    .map(|id| deadlines[id])
                    .min()
                    .unwrap();
                assert!(next <= earliest);
            }
            for id in poll(&mut wheel, now) {
                assert!(!fired[id], "{id} fired twice");
                fired[id] = true;
                fired_count += 1;
                let deadline = deadlines[id];
                assert!(deadline <= now, "{id} fired before its deadline");
                assert!(
                    polls == 0 || deadline > previous,
                    "{id} fired late: deadline {deadline}, previous poll {previous}"
                );
            }
            previous = now;
            polls += 1;
            if polls % 500 == 0 {
                wheel.check_invariants();
            }
        }
        assert!(wheel.is_empty());
        wheel.check_invariants();
    }

    #[test]
    fn model_based() {
        for seed in 1..=8 {
            model_run(seed, 30_000);
        }
    }

    fn model_run(seed: u64, steps: usize) {
        let mut rng = Rng::new(seed);
        let mut wheel = Wheel::new();
        // Model: the live timers, as (deadline, id) in deadline order.
        let mut model = BTreeSet::new();
        let mut keys: HashMap<u64, (Key, u64)> = HashMap::new();
        let mut stale = Vec::new();
        let mut next_id = 0u64;

        for step in 0..steps {
            match rng.below(10) {
                0..=4 => {
                    let elapsed = wheel.elapsed();
                    let deadline = match rng.below(10) {
                        0 => elapsed.saturating_sub(rng.below(100)),
                        1 => elapsed + MAX_DURATION + rng.below(1 << 40),
                        2 => elapsed + MAX_DURATION - rng.below(1 << 31),
                        _ => elapsed + rng.distance(),
                    };
                    let clamped = deadline.min(elapsed + MAX_DURATION);
                    let key = wheel.insert(deadline, next_id);
                    assert_eq!(wheel.deadline(key), Some(clamped));
                    model.insert((clamped, next_id));
                    keys.insert(next_id, (key, clamped));
                    next_id += 1;
                }
                5..=6 => {
                    if rng.below(4) == 0 && !stale.is_empty() {
                        let key = stale[rng.below(stale.len() as u64) as usize];
                        assert_eq!(wheel.remove(key), None);
                    } else if let Some(&(deadline, id)) = model
                        .range((wheel.elapsed().saturating_sub(50) + rng.distance(), 0)..)
                        .next()
                    {
                        let (key, _) = keys.remove(&id).unwrap();
                        assert_eq!(wheel.deadline(key), Some(deadline));
                        assert_eq!(wheel.remove(key), Some(id));
                        model.remove(&(deadline, id));
                        stale.push(key);
                    }
                }
                _ => {
                    let elapsed = wheel.elapsed();
                    let now = match rng.below(10) {
                        0 => elapsed.saturating_sub(rng.below(1000)),
                        1 => elapsed + rng.below(1 << 38),
                        2 => wheel.next_expiration().unwrap_or(elapsed),
                        3 => model.first().map_or(elapsed, |&(deadline, _)| deadline),
                        _ => elapsed + rng.distance() / 16,
                    };
                    let mut fired = poll(&mut wheel, now);
                    assert_eq!(wheel.elapsed(), elapsed.max(now));
                    fired.sort_unstable();
                    let horizon = elapsed.max(now);
                    let mut due = Vec::new();
                    while let Some(&(deadline, id)) = model.first() {
                        if deadline > horizon {
                            break;
                        }
                        model.pop_first();
                        due.push(id);
                    }
                    due.sort_unstable();
                    assert_eq!(fired, due, "seed {seed} step {step}: poll({now})");
                    for id in fired {
                        stale.push(keys.remove(&id).unwrap().0);
                    }
                }
            }

            assert_eq!(wheel.len(), model.len());
            match (wheel.next_expiration(), model.first()) {
                (None, None) => {}
                (Some(next), Some(&(earliest, _))) => {
                    assert!(
                        next <= earliest,
                        "seed {seed} step {step}: next {next}, earliest {earliest}, {wheel:?}"
                    );
                    // Progress: the wheel never asks to be polled in the past
                    // unless something is already due.
                    assert!(next > wheel.elapsed() || earliest <= wheel.elapsed());
                }
                (next, first) => panic!("seed {seed} step {step}: {next:?} vs {first:?}"),
            }
            if step % 1000 == 0 {
                wheel.check_invariants();
            }
        }
        wheel.check_invariants();

        // Drain: everything left fires exactly once.
        let mut fired = poll(&mut wheel, u64::MAX);
        fired.sort_unstable();
        let mut left: Vec<u64> = model.iter().map(|&(_, id)| id).collect();
        left.sort_unstable();
        assert_eq!(fired, left);
        assert!(wheel.is_empty());
        wheel.check_invariants();
    }

    #[test]
    fn cancelling_everything_leaves_nothing() {
        let mut rng = Rng::new(42);
        let mut wheel = Wheel::new();
        poll(&mut wheel, 1 << 20);
        let keys: Vec<Key> = (0..100_000)
            .map(|id| wheel.insert(wheel.elapsed() + rng.distance(), id))
            .collect();
        assert_eq!(wheel.len(), 100_000);
        wheel.check_invariants();
        // Cancel in a scrambled order.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for &i in &order {
            assert_eq!(wheel.remove(keys[i]), Some(i));
        }
        assert_eq!(wheel.len(), 0);
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_expiration(), None);
        assert!(wheel.occupied.iter().all(|&bits| bits == 0));
        assert!(wheel.lists.iter().all(|list| list.head == NIL));
        wheel.check_invariants();
        // The storage is reused rather than grown.
        let capacity = wheel.entries.len();
        for id in 0..100_000 {
            wheel.insert(rng.distance(), id);
        }
        assert_eq!(wheel.entries.len(), capacity);
        wheel.check_invariants();
    }

    #[test]
    fn values_are_dropped() {
        use std::rc::Rc;
        let token = Rc::new(());
        let mut wheel = Wheel::new();
        for i in 0..1000 {
            wheel.insert(i * 1000, Rc::clone(&token));
        }
        let key = wheel.insert(5, Rc::clone(&token));
        drop(wheel.remove(key));
        drop(poll(&mut wheel, 500_000));
        assert_eq!(Rc::strong_count(&token), 500);
        drop(wheel);
        assert_eq!(Rc::strong_count(&token), 1);
    }

    /// Micro-benchmark of insert+remove pairs; figures are only meaningful
    /// in an optimised build.
    #[test]
    #[ignore]
    fn bench_insert_remove() {
        use std::hint::black_box;
        use std::time::Instant;

        const PAIRS: u64 = 1_000_000;
        const ROUNDS: usize = 7;
        const BASE: u64 = 123_456;
        let mut rng = Rng::new(3);
        let offsets: Vec<u64> = (0..4096).map(|_| 1 + rng.distance()).collect();
        let deadline = |i: u64| BASE + offsets[(i & 4095) as usize];
        let mut wheel = Wheel::new();
        wheel.poll(BASE, &mut Vec::new());

        // Insert then remove at once: the free list hands back the same entry.
        let immediate = best_of(ROUNDS, || {
            let start = Instant::now();
            for i in 0..PAIRS {
                let key = wheel.insert(black_box(deadline(i)), i);
                black_box(wheel.remove(black_box(key)));
            }
            start.elapsed()
        });

        // A sliding window of 10,000 live timers: each step inserts one and
        // cancels the oldest, so lists are non-empty and entries are spread.
        let mut window = std::collections::VecDeque::with_capacity(10_001);
        for i in 0..10_000 {
            window.push_back(wheel.insert(deadline(i), i));
        }
        let windowed = best_of(ROUNDS, || {
            let start = Instant::now();
            for i in 0..PAIRS {
                window.push_back(wheel.insert(black_box(deadline(i.wrapping_mul(7))), i));
                let oldest = window.pop_front().unwrap();
                black_box(wheel.remove(black_box(oldest)));
            }
            start.elapsed()
        });
        assert_eq!(wheel.len(), 10_000);

        let per_pair = |time: std::time::Duration| time.as_nanos() as f64 / PAIRS as f64;
        println!(
            "insert+remove, immediate:        {:.2} ns/pair (best of {ROUNDS})",
            per_pair(immediate)
        );
        println!(
            "insert+remove, 10k live window:  {:.2} ns/pair (best of {ROUNDS})",
            per_pair(windowed)
        );
    }

    fn best_of(rounds: usize, mut run: impl FnMut() -> std::time::Duration) -> std::time::Duration {
        (0..rounds).map(|_| run()).min().unwrap()
    }
}
