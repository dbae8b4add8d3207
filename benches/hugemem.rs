//! Criterion benches for the hugepage provider: page alloc/free per page
//! size, a 64 MiB chunk, virt2iova, iova2virt.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pktmem::hugemem::{AllocRequest, PageSize, Provider};

fn page_alloc_free(c: &mut Criterion) {
    let p = Provider::builder().quiet(true).build().unwrap();
    let mut g = c.benchmark_group("hugemem_page_alloc_free");
    for ps in [PageSize::Small4K, PageSize::Huge2M, PageSize::Huge1G] {
        let req = AllocRequest::new(ps.bytes())
            .page_size(ps)
            .require_page_size(true);
        match p.alloc_with(&req) {
            Ok(first) => drop(first),
            Err(e) => {
                eprintln!("hugemem bench: skipping {ps} pages: {e}");
                continue;
            }
        }
        g.bench_function(format!("{ps}"), |b| {
            b.iter(|| drop(black_box(p.alloc_with(&req).unwrap())));
        });
    }
    g.finish();
}

fn chunk_64m(c: &mut Criterion) {
    let p = Provider::builder().quiet(true).build().unwrap();
    let mut g = c.benchmark_group("hugemem_chunk_64m");
    g.sample_size(10);
    g.bench_function("alloc_free", |b| {
        b.iter(|| drop(black_box(p.alloc(64 << 20).unwrap())));
    });
    g.bench_function("alloc_touch_free", |b| {
        b.iter(|| {
            let mut ch = p.alloc(64 << 20).unwrap();
            ch.as_mut_slice().fill(0);
            drop(black_box(ch));
        });
    });
    g.finish();
}

fn translate(c: &mut Criterion) {
    let p = Provider::builder().quiet(true).build().unwrap();
    let ch = p.alloc(64 << 20).unwrap();
    let base = ch.as_ptr().as_ptr().cast_const();
    let mut x: u64 = 88_172_645_463_325_252;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % (64 << 20)) as usize
    };
    c.bench_function("hugemem_virt2iova", |b| {
        b.iter(|| p.virt2iova(black_box(base.wrapping_add(next()))));
    });
    let iovas: Vec<_> = ch.pages().filter_map(|pg| pg.iova).collect();
    let mut i = 0;
    c.bench_function("hugemem_iova2virt", |b| {
        b.iter(|| {
            i = (i + 7) % iovas.len();
            p.iova2virt(black_box(iovas[i]))
        });
    });
}

criterion_group!(benches, page_alloc_free, chunk_64m, translate);
criterion_main!(benches);
