//! A tour of the hugepage provider: the kernel's hugepage inventory, a
//! 64 MiB chunk mapped on demand, its IOVA runs, translation both ways, a
//! named zone, and the memory going back.
//!
//! ```sh
//! cargo run --release --example hugemem_tour
//! ```

use std::time::Instant;

use pktmem::hugemem::{inventory, process_hugetlb_bytes, AllocRequest, Provider};

fn main() {
    let len: usize = if std::env::var_os("PKTMEM_EXAMPLE_SHORT").is_some() {
        8 << 20
    } else {
        64 << 20
    };
    for h in inventory() {
        println!("kernel   {h}");
    }
    // A provider of its own (hugepages when reserved, 4 KiB pages otherwise,
    // said once on stderr); `Provider::global()` is the shortcut when one
    // process-wide provider is all a program needs.
    let p = match Provider::builder().build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("provider: {e}");
            std::process::exit(1);
        }
    };
    println!("provider IOVA mode {:?}", p.iova_mode());

    let t = Instant::now();
    let mut chunk = match p.alloc(len) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("allocation failed: {e}");
            std::process::exit(1);
        }
    };
    chunk.as_mut_slice().fill(0);
    println!(
        "chunk    {} MiB in {} pages of {} KiB at {:p}, mapped and zeroed in {:?}",
        len >> 20,
        chunk.pages().count(),
        chunk.page_size() >> 10,
        chunk.as_ptr(),
        t.elapsed()
    );
    let runs: Vec<_> = chunk.segments().collect();
    println!(
        "iova     {} IOVA-contiguous run(s); first {:?}, contiguous: {}",
        runs.len(),
        chunk.iova(),
        chunk.is_iova_contiguous()
    );
    let addr = chunk.as_ptr().as_ptr().wrapping_add(len / 3);
    match p.virt2iova(addr) {
        Some(iova) => println!(
            "lookup   va {addr:p} -> {iova:?} -> va {:?}",
            p.iova2virt(iova)
        ),
        None => println!("lookup   va {addr:p} has no IOVA"),
    }
    // A zone: a chunk others can find by name, freed when its owner drops it.
    match p.zone_reserve("tour", &AllocRequest::new(4096)) {
        Ok(zone) => println!(
            "zone     '{}' at {:p}, lookup finds {:#x}",
            zone.name(),
            zone.as_ptr(),
            p.zone_lookup("tour").map_or(0, |z| z.va)
        ),
        Err(e) => println!("zone     {e}"),
    }
    println!(
        "process  HugetlbPages {} KiB",
        process_hugetlb_bytes().unwrap_or(0) >> 10
    );
    if let Some(why) = p.info().fallback {
        println!("fallback {why}");
    }
    drop(chunk);
    println!(
        "freed    mapped now {} bytes, HugetlbPages {} KiB",
        p.mapped_bytes(),
        process_hugetlb_bytes().unwrap_or(0) >> 10
    );
}
