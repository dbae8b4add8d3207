//! Loom models of the shared descriptor ring, `pktmem::ring::shared` (run
//! with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release
//! --test loom_shm_ring`). Capacity 2, a producer and a consumer thread,
//! three or four descriptors: FIFO, nothing lost, nothing made up, both
//! words of every descriptor as written (a slot read before its store was
//! visible would show the zero `init_shm_ring` wrote); and restarts: an end
//! dropped mid-stream and attached again continues where it left off.
//!
//! What these catch: weakening the producer's Release store of the tail or
//! the consumer's Acquire load of it to Relaxed fails every model (the
//! consumer reads a slot's previous descriptor). The other pair — the
//! consumer's Release store of the head after its slot loads, the
//! producer's Acquire load of it before overwriting — forbids a slot load
//! reading a store made after it (load buffering), which loom does not
//! model: weakening those passes here, and is argued by the pairing
//! comments in the source instead.

#![cfg(loom)]

use std::ptr::NonNull;

use loom::thread;
use pktmem::ring::shared::{
    init_shm_ring, shm_ring_bytes, shm_ring_indices, Desc, ShmConsumer, ShmProducer,
};

/// Memory for a ring of 2, initialised (inside the model: loom's atomics
/// are made by `init_shm_ring`). Kept alive by the model until every thread
/// has joined.
struct Mem(Vec<u64>);

impl Mem {
    fn ring() -> Mem {
        let m = Mem(vec![0; shm_ring_bytes(2) / 8]);
        // SAFETY: the memory is alive and no end exists yet.
        unsafe { init_shm_ring(m.ptr(), m.len(), 2) }.unwrap();
        m
    }

    fn ptr(&self) -> NonNull<u8> {
        NonNull::new(self.0.as_ptr().cast_mut().cast::<u8>()).unwrap()
    }

    fn len(&self) -> usize {
        self.0.len() * 8
    }

    /// Where another thread can find the memory (`NonNull` is not `Send`).
    fn at(&self) -> At {
        At(self.ptr().as_ptr() as usize, self.len())
    }
}

/// A ring's address and length, for attaching from another thread.
#[derive(Clone, Copy)]
struct At(usize, usize);

impl At {
    fn producer(self) -> ShmProducer {
        // SAFETY: the `Mem` this came from outlives every thread of the
        // model (joined before it drops) and is reached only through ends.
        unsafe { ShmProducer::attach(NonNull::new(self.0 as *mut u8).unwrap(), self.1) }.unwrap()
    }

    fn consumer(self) -> ShmConsumer {
        // SAFETY: as in `producer`.
        unsafe { ShmConsumer::attach(NonNull::new(self.0 as *mut u8).unwrap(), self.1) }.unwrap()
    }
}

fn d(v: u64) -> Desc {
    Desc::new(v, v * 10)
}

/// Sends `vals` in bursts of whatever fits.
fn send(p: &mut ShmProducer, vals: &[u64]) {
    let descs: Vec<Desc> = vals.iter().map(|&v| d(v)).collect();
    let mut sent = 0;
    while sent < descs.len() {
        let n = p.enqueue_burst(&descs[sent..]).unwrap();
        sent += n;
        if n == 0 {
            thread::yield_now();
        }
    }
}

/// Receives `want` in order, in bursts of up to 2.
fn recv(c: &mut ShmConsumer, want: &[u64]) {
    let mut got = 0;
    let mut out = [Desc::default(); 2];
    while got < want.len() {
        let k = (want.len() - got).min(2);
        let n = c.dequeue_burst(&mut out[..k]).unwrap();
        for v in &out[..n] {
            assert_eq!(*v, d(want[got]), "FIFO, both words written");
            got += 1;
        }
        if n == 0 {
            thread::yield_now();
        }
    }
}

/// Both ends drained: nothing extra, indices where they should be.
fn assert_drained(m: &Mem, c: &mut ShmConsumer, n: u64) {
    let mut out = [Desc::default(); 2];
    assert_eq!(c.dequeue_burst(&mut out).unwrap(), 0, "nothing made up");
    // SAFETY: as in `At::producer`.
    assert_eq!(
        unsafe { shm_ring_indices(m.ptr(), m.len()) }.unwrap(),
        (n, n)
    );
}

/// A producer thread sends 1, 2, 3 through a ring of 2 (bursts of what
/// fits); the consumer gets them in order, each as written.
#[test]
fn spsc_fifo_no_loss() {
    loom::model(|| {
        let m = Mem::ring();
        let at = m.at();
        let t = thread::spawn(move || send(&mut at.producer(), &[1, 2, 3]));
        let mut c = at.consumer();
        recv(&mut c, &[1, 2, 3]);
        t.join().unwrap();
        assert_drained(&m, &mut c, 3);
    });
}

/// The producer sends 1, 2, drops its end mid-stream, attaches a new one
/// (which resumes at the published tail, 2, with a head it reads afresh)
/// and sends 3, 4; the consumer gets 1..=4 once each, in order.
#[test]
fn producer_restart_resumes() {
    loom::model(|| {
        let m = Mem::ring();
        let at = m.at();
        let t = thread::spawn(move || {
            let mut p = at.producer();
            send(&mut p, &[1, 2]);
            drop(p);
            let mut p = at.producer();
            assert_eq!(p.position(), 2, "resumed at the published tail");
            send(&mut p, &[3, 4]);
        });
        let mut c = at.consumer();
        recv(&mut c, &[1, 2, 3, 4]);
        t.join().unwrap();
        assert_drained(&m, &mut c, 4);
    });
}

/// The same for the consumer: it takes 1, drops its end, attaches again
/// (resuming at the published head) and takes 2, 3.
#[test]
fn consumer_restart_resumes() {
    loom::model(|| {
        let m = Mem::ring();
        let at = m.at();
        let t = thread::spawn(move || send(&mut at.producer(), &[1, 2, 3]));
        let mut c = at.consumer();
        recv(&mut c, &[1]);
        drop(c);
        let mut c = at.consumer();
        assert_eq!(c.position(), 1, "resumed at the published head");
        recv(&mut c, &[2, 3]);
        t.join().unwrap();
        assert_drained(&m, &mut c, 3);
    });
}
