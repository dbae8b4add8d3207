//! The memory inspector: what this machine offers (hugepages per size and
//! NUMA node, how to reserve more, the IOVA mode and why), then, after a
//! short demo (a provider, an allocation, a mempool and a packet pool on
//! it), what the provider and the pools hold: lists, pages, IOVA runs, the
//! region table, the pools' chunks and counts, and a picture of the VA
//! layout — what one would otherwise dig out of `/proc` and `/sys`. The
//! provider's books are checked against the kernel's (`/proc/self/maps`,
//! `HugetlbPages`), every pool is audited, and everything must go back at
//! the end; any failed check makes the exit status 1.
//!
//! ```sh
//! cargo run --example meminfo                  # hugepages when reserved
//! cargo run --example meminfo -- --small-pages # as if none were reserved
//! ```
//!
//! `PKTMEM_EXAMPLE_SHORT=1` is honoured (the demo is small either way: the
//! output is the same).

use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::process::ExitCode;

use clap::Parser;
use pktmem::hugemem::{
    check_pool_access, inventory, node_inventory, probe_iova, process_hugetlb_bytes, Chunk,
    HugepageInventory, IovaRun, ListInfo, PageInfo, PoolAccessError, Provider,
};
use pktmem::mbuf::{Mbuf, PktPool};
use pktmem::mempool::{Mempool, Obj, PoolCounts, RingPlacement};

/// Inspect hugepages, IOVAs and what a provider and its pools hold.
#[derive(Parser, Debug)]
struct Args {
    /// Act as if no hugepage were reserved: the provider uses 4 KiB pages
    /// only (the real inventory is still shown).
    #[arg(long)]
    small_pages: bool,
    /// Cells in each VA bar (the default keeps the pictures within 80 columns).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(16..=160))]
    width: u16,
}

const MIB: usize = 1 << 20;

fn main() -> ExitCode {
    let args = Args::parse();
    let mut checks = Checks::default();

    let inv = inventory();
    let baseline_hugetlb = process_hugetlb_bytes();
    machine(&inv, &args);

    if std::env::var_os("PKTMEM_EXAMPLE_SHORT").is_some() {
        // CI's short settings: the demo is small either way (well under a
        // second), so it runs as it is.
        println!("\n(PKTMEM_EXAMPLE_SHORT: the demo is short already; it runs unchanged)");
    }
    if let Err(e) = demo(&args, &mut checks, baseline_hugetlb) {
        println!("demo failed: {e}");
        checks.fail(format!("demo: {e}"));
    }

    println!();
    if checks.failed.is_empty() {
        println!("summary: {} checks passed", checks.passed);
        ExitCode::SUCCESS
    } else {
        println!(
            "summary: {} checks passed, {} FAILED:",
            checks.passed,
            checks.failed.len()
        );
        for f in &checks.failed {
            say(2, &format!("- {f}"));
        }
        ExitCode::FAILURE
    }
}

/// The machine: hugepage inventory, how to reserve more, IOVA mode.
fn machine(inv: &[HugepageInventory], args: &Args) {
    heading("Hugepages (/sys/kernel/mm/hugepages)");
    if inv.is_empty() {
        println!("  this kernel offers no hugepages (no /sys/kernel/mm/hugepages)");
    } else {
        println!(
            "  {:<7} {:>7} {:>7} {:>9} {:>8} {:>10}   total bytes",
            "size", "total", "free", "reserved", "surplus", "available"
        );
        for h in inv {
            println!(
                "  {:<7} {:>7} {:>7} {:>9} {:>8} {:>10}   {}",
                bytes(h.page_size),
                h.total,
                h.free,
                h.reserved,
                h.surplus,
                h.available(),
                bytes(h.page_size * usize::try_from(h.total).unwrap_or(usize::MAX / 2))
            );
        }
        println!(
            "  (reserved: promised to a mapping, not yet faulted; available = free - reserved)"
        );
    }
    let nodes = node_inventory();
    let mut ids: Vec<u32> = nodes.iter().map(|n| n.node.id()).collect();
    ids.dedup();
    if ids.len() > 1 {
        println!("  per NUMA node (/sys/devices/system/node/node*/hugepages):");
        for n in &nodes {
            println!("    {n}");
        }
    } else {
        println!(
            "  one NUMA node: the counts above are node {}'s",
            ids.first().unwrap_or(&0)
        );
    }
    if let Some(b) = process_hugetlb_bytes() {
        println!(
            "  this process maps {} of hugepages (HugetlbPages, /proc/self/status)",
            bytes(b)
        );
    }

    reserve_section(inv, args);
    iova_section();
}

/// How to reserve hugepages, and whether this process could.
fn reserve_section(inv: &[HugepageInventory], args: &Args) {
    heading("Reserving hugepages");
    let usable = inv.iter().any(|h| h.available() > 0);
    if args.small_pages {
        say(
            2,
            "--small-pages: acting as if no hugepage were reserved (the table above is real).",
        );
    }
    if !usable || args.small_pages {
        say(
            2,
            "No hugepage is free: pktmem falls back to 4 KiB pages (locked; one IOVA per 4 KiB \
             page, so IOVA-contiguous chunks are rare and big objects waste most of a page). \
             Reserve some as below, then run this again.",
        );
    }
    let default_size = default_hugepage_size();
    for (size, label, more) in [(2 * MIB, "2 MiB", 512u64), (1 << 30, "1 GiB", 2)] {
        let Some(mut h) = inv.iter().find(|h| h.page_size == size).copied() else {
            println!("  {label} pages: not offered by this kernel/CPU (no sysfs directory)");
            continue;
        };
        if args.small_pages {
            h.total = 0; // what the advice would be with none reserved
        }
        let want = if h.total == 0 {
            more * 2
        } else {
            h.total + more
        };
        println!(
            "  {label} pages ({} now), to have {want} = {} (the file takes the total):",
            h.total,
            bytes(size * usize::try_from(want).unwrap_or(0))
        );
        println!(
            "    echo {want} | sudo tee {}",
            h.nr_hugepages_path().display()
        );
        if size == 1 << 30 {
            println!("    (at run time this may get fewer once memory is fragmented: check the");
            println!("    count after; at boot, reliably: kernel command line");
            println!("    hugepagesz=1G hugepages={want})");
        } else if Some(size) == default_size {
            println!("    or: sysctl -w vm.nr_hugepages={want}   (the default size; persist it");
            println!("    in /etc/sysctl.d/, or boot with hugepages={want})");
        }
    }
    match check_pool_access(2 * MIB) {
        Ok(path) => say(
            2,
            &format!(
                "this process could run these: it may write {}",
                path.display()
            ),
        ),
        Err(e @ PoolAccessError::NoSuchSize { .. }) => say(2, &e.to_string()),
        Err(e) => say(2, &format!("this process could NOT run these: {e}")),
    }
    println!("  no hugetlbfs mount is needed: pktmem maps hugepages through memfd_create");
}

/// The IOVA mode this process can have, and why.
fn iova_section() {
    heading("IOVA mode");
    let why = probe_iova();
    say(2, &format!("this process: {:?}. {why}", why.mode()));
    match std::fs::read_dir("/sys/kernel/iommu_groups") {
        Ok(d) => {
            let n = d.count();
            if n == 0 {
                println!("  no IOMMU groups (/sys/kernel/iommu_groups is empty): devices DMA to");
                println!("  physical addresses, which only root can learn");
            } else {
                println!("  {n} IOMMU group(s): devices bound to VFIO can use IOVA = VA");
                println!("  (ProviderBuilder::iova_mode(IovaMode::Va), with a DmaMapper)");
            }
        }
        Err(_) => println!("  no /sys/kernel/iommu_groups: no IOMMU support in this kernel"),
    }
}

/// The demo: a provider, an allocation, a mempool and a packet pool, shown
/// while some objects and mbufs are out, then everything given back.
fn demo(args: &Args, checks: &mut Checks, baseline: Option<usize>) -> Result<(), pktmem::Error> {
    let mut b = Provider::builder().quiet(true);
    if args.small_pages {
        b = b.small_pages_only();
    }
    let p = b.build()?;
    let mut kept = p.alloc(5 * MIB)?;
    kept.as_mut_slice().fill(0x5a);
    let scratch = p.alloc(3 * MIB)?;
    let objs = Mempool::builder(4095, 200)
        .name("demo-objs")
        .cache(32)
        .build_on(&p)?;
    let mbufs = PktPool::builder(2047)
        .name("demo-mbufs")
        .cache(64)
        .build_on(&p)?;
    drop(scratch); // its pages go back: a hole in the VA picture

    // Mbufs first: they are owned values, so an error below gives them back.
    let mut mcache = mbufs.cache();
    let mut held: Vec<Mbuf> = Vec::new();
    for i in 0..300u32 {
        let mut m = mbufs.alloc(&mut mcache)?;
        m.append(4)?.copy_from_slice(&i.to_be_bytes());
        held.push(m);
    }
    // Raw objects last, all or none, and nothing fallible until they go back.
    let mut ocache = objs.cache();
    let mut slots = [MaybeUninit::<Obj>::uninit(); 100];
    let taken: Vec<Obj> = objs.get_bulk(&mut ocache, &mut slots)?.to_vec();

    describe_demo(&objs, &mbufs, &held);

    let owners = Owners::new(&kept, &[(&objs, 'M'), (mbufs.mempool(), 'P')]);
    provider_section(&p, &owners);
    pools_section(&p, &[&objs, mbufs.mempool()], checks);
    layout_section(&p, &owners, usize::from(args.width));
    kernel_section(&p, checks, baseline);

    heading("Giving everything back");
    // SAFETY: the objects were taken from `objs` above and go back once;
    // nothing else refers to them.
    unsafe { objs.put_bulk(&mut ocache, &taken) };
    mbufs.free_bulk(&mut mcache, held.drain(..));
    drop((ocache, mcache));
    checks.check(
        objs.is_full(),
        format!("mempool '{}' full again", objs.name()),
    );
    checks.check(
        mbufs.is_full(),
        format!("packet pool '{}' full again", mbufs.mempool().name()),
    );
    for pool in [&objs, mbufs.mempool()] {
        match pool.audit() {
            Ok(r) => checks.check(
                r.taken == 0,
                format!(
                    "audit of '{}' after the frees: {} taken",
                    pool.name(),
                    r.taken
                ),
            ),
            Err(e) => checks.fail(format!("audit of '{}' after the frees: {e}", pool.name())),
        }
    }
    drop((objs, mbufs, kept));
    checks.check(
        p.mapped_bytes() == 0,
        format!(
            "every page back to the system: provider maps {}",
            bytes(p.mapped_bytes())
        ),
    );
    let now = process_hugetlb_bytes();
    checks.check(
        now == baseline,
        format!(
            "HugetlbPages back to {} (now {})",
            opt_bytes(baseline),
            opt_bytes(now)
        ),
    );
    Ok(())
}

/// What the demo made.
fn describe_demo(objs: &Mempool, mbufs: &PktPool, held: &[Mbuf]) {
    heading("Demo");
    println!(
        "  a provider; a 5 MiB allocation (A); a 3 MiB one, freed after the pools were built;"
    );
    println!(
        "  mempool '{}' of {} x {} B objects (cache {}): 100 taken;",
        objs.name(),
        objs.size(),
        objs.obj_size().elt_size,
        objs.cache_size()
    );
    println!(
        "  packet pool '{}' of {} mbufs, data room {} B (cache {}): 300 held.",
        mbufs.mempool().name(),
        mbufs.size(),
        mbufs.data_room(),
        mbufs.mempool().cache_size()
    );
    if let Some(m) = held.first() {
        println!(
            "  mbuf #0: buffer at {:p}, data IOVA {}, {} B of data",
            m.buf_addr(),
            iova_str(m.data_iova()),
            m.data_len()
        );
    }
}

/// The provider's settings, lists, pages, IOVA runs and region table.
fn provider_section(p: &Provider, owners: &Owners) {
    let info = p.info();
    heading("Provider");
    let preferred: Vec<String> = info.preferred.iter().map(ToString::to_string).collect();
    println!(
        "  source {:?}, hugepage sizes tried {}, small-page fallback {}",
        info.source,
        if preferred.is_empty() {
            "none".to_string()
        } else {
            preferred.join(", ")
        },
        if info.fallback_allowed {
            "allowed"
        } else {
            "forbidden"
        }
    );
    say(
        2,
        &format!("IOVA mode {:?}. {}", p.iova_mode(), p.iova_reason()),
    );
    println!(
        "  mapped {}, kept minimum {}, limit {}, {} zone(s)",
        bytes(info.mapped),
        bytes(info.min_keep),
        info.limit.map_or("none".into(), bytes),
        info.zones
    );
    if let Some(why) = &info.fallback {
        println!(
            "  fell back to 4 KiB pages {} time(s); first because:",
            info.fallback_count
        );
        say(4, why);
    }
    let mut pages: Vec<PageInfo> = Vec::new();
    p.walk_pages(|pg| pages.push(*pg));
    let runs = p.iova_runs();
    for l in p.lists() {
        list_section(&l, &pages, &runs, owners);
    }
    let regions = p.regions();
    println!();
    println!(
        "  region table (another process maps fd at offset to va): {} region(s)",
        regions.len()
    );
    for r in regions.iter().take(6) {
        println!(
            "    fd {:<3} offset {:#010x}  va {:#x} + {:<8} {} pages",
            r.fd,
            r.offset,
            r.va,
            bytes(r.len),
            bytes(r.page_size)
        );
    }
    if regions.len() > 6 {
        println!("    ... {} more regions", regions.len() - 6);
    }
}

/// One list of the provider: its pages and IOVA runs.
fn list_section(l: &ListInfo, pages: &[PageInfo], runs: &[IovaRun], owners: &Owners) {
    println!();
    println!(
        "  list {}: {} pages, {}",
        l.id,
        bytes(l.page_size),
        backing(l)
    );
    println!(
        "    reservation {:#x}..{:#x} ({})",
        l.va,
        l.va + l.va_len,
        bytes(l.va_len)
    );
    println!(
        "    mapped {} pages = {}, in use {} = {}",
        l.mapped_pages,
        bytes(l.mapped_pages * l.page_size),
        l.used_pages,
        bytes(l.used_pages * l.page_size)
    );
    let span = l.va..l.va + l.va_len;
    let mine: Vec<&PageInfo> = pages.iter().filter(|pg| pg.list == l.id).collect();
    if mine.is_empty() {
        println!("    no page mapped now");
        return;
    }
    println!("    pages (va, iova, node, state, holder):");
    let show = if mine.len() <= 12 { mine.len() } else { 8 };
    for pg in &mine[..show] {
        println!(
            "      {:#x}  iova {:<14} {:<7} {:<6}  {}",
            pg.va,
            iova_str(pg.iova),
            pg.node.map_or("node ?".to_string(), |n| n.to_string()),
            if pg.in_use { "in use" } else { "free" },
            owners.describe(pg.va..pg.va + pg.size)
        );
    }
    if mine.len() > show {
        println!("      ... {} more pages", mine.len() - show);
    }
    let lruns: Vec<_> = runs.iter().filter(|r| span.contains(&r.va)).collect();
    let largest = lruns.iter().map(|r| r.len).max().unwrap_or(0);
    println!(
        "    IOVA runs (contiguous for a device): {}, largest {}",
        lruns.len(),
        bytes(largest)
    );
    for r in lruns.iter().take(6) {
        println!(
            "      va {:#x} + {:<8} -> iova {}",
            r.va,
            bytes(r.len),
            iova_str(r.iova)
        );
    }
    if lruns.len() > 6 {
        println!("      ... {} more runs", lruns.len() - 6);
    }
}

/// Each pool: layout, counts, ring, chunks, audit.
fn pools_section(p: &Provider, pools: &[&Mempool], checks: &mut Checks) {
    heading("Pools");
    for pool in pools {
        let o = pool.obj_size();
        let c = pool.counts();
        println!(
            "  '{}': {} objects of {} B ({} header + {} body + {} trailer), align {}",
            pool.name(),
            c.size,
            o.total_size,
            o.header_size,
            o.elt_size,
            o.trailer_size,
            o.align
        );
        println!(
            "    populated {}, free in the backend {}, in caches {}, in use {}{}",
            c.populated,
            c.in_backend,
            c.in_caches,
            c.in_use,
            if pool.is_non_io() {
                " (not for IO: no IOVA)"
            } else {
                ""
            }
        );
        match (pool.ring_placement(), pool.ring_memory_range()) {
            (Some(place), Some(r)) => println!(
                "    ring slots at {:#x}..{:#x} ({}): {}",
                r.start,
                r.end,
                bytes(r.end - r.start),
                match place {
                    RingPlacement::Provider => "in the provider's small heap",
                    RingPlacement::Heap => "on the heap",
                    RingPlacement::HeapFallback => "on the heap (the provider had none)",
                    _ => "elsewhere",
                }
            ),
            _ => println!("    backend: not the built-in ring"),
        }
        let mut chunks = Vec::new();
        pool.for_each_chunk(|ch| chunks.push(*ch));
        let total: usize = chunks.iter().map(|ch| ch.len).sum();
        println!(
            "    {} chunk(s), {} (address, length, IOVA, objects, page size):",
            chunks.len(),
            bytes(total)
        );
        for ch in chunks.iter().take(6) {
            let addr = ch.addr.as_ptr() as usize;
            println!(
                "      {:#x}  {:<9} iova {:<16} {:>5} objects  {}",
                addr,
                bytes(ch.len),
                iova_str(ch.iova),
                ch.objects,
                p.page_of(addr)
                    .map_or("-".to_string(), |pg| bytes(pg.size) + " pages")
            );
        }
        if chunks.len() > 6 {
            let rest: usize = chunks[6..].iter().map(|ch| ch.objects).sum();
            println!(
                "      ... {} more chunks with {rest} objects",
                chunks.len() - 6
            );
        }
        let placed: usize = chunks.iter().map(|ch| ch.objects).sum();
        checks.check(
            placed == c.populated,
            format!(
                "'{}': the chunks hold {placed} objects, {} populated",
                pool.name(),
                c.populated
            ),
        );
        audit_check(pool, &c, checks);
    }
    println!("  (get/put/cache-hit counters need the mempool's `stats` feature: not shown)");
}

/// Audits `pool` while objects are out: every header intact, every object
/// found, and (debug builds) as many marked taken as callers hold.
fn audit_check(pool: &Mempool, c: &PoolCounts, checks: &mut Checks) {
    match pool.audit() {
        Ok(r) => {
            // Debug builds mark taken objects in their headers; release
            // builds do not (r.taken is 0 there).
            let taken_ok = !cfg!(debug_assertions) || r.taken == c.in_use;
            checks.check(
                r.objects == c.populated && taken_ok,
                format!(
                    "audit of '{}': headers intact; {} objects ({} populated) in {} \
                     chunks, {} marked taken ({} in use{})",
                    pool.name(),
                    r.objects,
                    c.populated,
                    r.chunks,
                    r.taken,
                    c.in_use,
                    if cfg!(debug_assertions) {
                        ""
                    } else {
                        "; release builds mark none"
                    }
                ),
            );
        }
        Err(e) => checks.fail(format!("audit of '{}': {e}", pool.name())),
    }
}

/// A picture of each list's VA: the whole reservation, then the part in use.
fn layout_section(p: &Provider, owners: &Owners, width: usize) {
    heading("VA layout");
    println!("  legend: A the allocation  M mempool chunks  P packet-pool chunks  r pool rings");
    println!("          o other in-use pages (small heap)  = mapped, free  . reserved, unmapped");
    println!("  iova line: ^ an IOVA-contiguous run (what a device sees) starts, - it goes on");
    let mut pages: Vec<PageInfo> = Vec::new();
    p.walk_pages(|pg| pages.push(*pg));
    let runs = p.va_runs();
    let iova_runs = p.iova_runs();
    for l in p.lists() {
        let mine: Vec<&PageInfo> = pages.iter().filter(|pg| pg.list == l.id).collect();
        println!();
        println!(
            "  list {} ({} pages): reservation {:#x}..{:#x}, {}",
            l.id,
            bytes(l.page_size),
            l.va,
            l.va + l.va_len,
            bytes(l.va_len)
        );
        let whole = bar(l.va..l.va + l.va_len, width, |cell| {
            if mine
                .iter()
                .any(|pg| overlaps(&(pg.va..pg.va + pg.size), &cell))
            {
                '#'
            } else {
                '.'
            }
        });
        println!(
            "    all  |{whole}| 1 cell = {}",
            bytes((l.va_len).div_ceil(width))
        );
        let Some(end) = mine.iter().map(|pg| pg.va + pg.size).max() else {
            println!("    nothing mapped");
            continue;
        };
        // Zoom: from the reservation's start to the end of its last mapped
        // page, in whole cells of whole pages where possible.
        let span = (end - l.va).div_ceil(width).next_multiple_of(4096) * width;
        let zoom = l.va..l.va + span;
        let picture = bar(zoom.clone(), width, |cell| {
            let mapped: Vec<&&PageInfo> = mine
                .iter()
                .filter(|pg| overlaps(&(pg.va..pg.va + pg.size), &cell))
                .collect();
            if mapped.is_empty() {
                return '.';
            }
            if let Some(c) = owners.letter(&cell) {
                return c;
            }
            if mapped.iter().any(|pg| pg.in_use) {
                'o'
            } else {
                '='
            }
        });
        println!("    used |{picture}| 1 cell = {}", bytes(span / width));
        // Where a device's view breaks: each IOVA-contiguous run's start.
        let starts: Vec<usize> = iova_runs
            .iter()
            .filter(|r| zoom.contains(&r.va))
            .map(|r| r.va)
            .collect();
        let breaks = bar(zoom.clone(), width, |cell| {
            if starts.iter().any(|va| cell.contains(va)) {
                '^'
            } else if mine
                .iter()
                .any(|pg| overlaps(&(pg.va..pg.va + pg.size), &cell))
            {
                '-'
            } else {
                ' '
            }
        });
        println!("    iova |{breaks}|");
        let left = format!("{:#x}", zoom.start);
        let right = format!("{:#x}", zoom.end);
        let gap = (width + 2).saturating_sub(left.len() + right.len());
        println!("          {left}{}{right}", " ".repeat(gap));
        let mut line = String::new();
        let lruns: Vec<_> = runs
            .iter()
            .filter(|r| (l.va..l.va + l.va_len).contains(&r.va))
            .collect();
        for (i, r) in lruns.iter().enumerate() {
            if i == 4 {
                let _ = write!(line, ", ... {} more", lruns.len() - 4);
                break;
            }
            let _ = write!(
                line,
                "{}{:#x}+{}",
                if i == 0 { "" } else { ", " },
                r.va,
                bytes(r.len)
            );
        }
        println!("    mapped runs: {line}");
    }
}

/// The provider's books against the kernel's: `/proc/self/maps` and
/// `HugetlbPages`.
fn kernel_section(p: &Provider, checks: &mut Checks, baseline: Option<usize>) {
    heading("The kernel's view (/proc/self/maps, /proc/self/status)");
    let maps = match std::fs::read_to_string("/proc/self/maps") {
        Ok(s) => s,
        Err(e) => {
            println!("  cannot read /proc/self/maps: {e}");
            return;
        }
    };
    let vmas: Vec<(Range<usize>, String)> = maps
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (lo, hi) = fields.next()?.split_once('-')?;
            let perms = fields.next()?.to_string();
            let range = usize::from_str_radix(lo, 16).ok()?..usize::from_str_radix(hi, 16).ok()?;
            Some((range, perms))
        })
        .collect();
    let mut huge_mapped = 0;
    for l in p.lists().iter().filter(|l| !l.external) {
        let res = l.va..l.va + l.va_len;
        let (mut n, mut rw) = (0, 0);
        for (r, perms) in &vmas {
            let (s, e) = (r.start.max(res.start), r.end.min(res.end));
            if s < e && perms.starts_with("rw") {
                n += 1;
                rw += e - s;
            }
        }
        let books = l.mapped_pages * l.page_size;
        if l.page_size > 4096 {
            huge_mapped += books;
        }
        checks.check(
            rw == books,
            format!(
                "list {}: the kernel has {n} read-write mapping(s) of {} in its reservation, \
                 the provider {}",
                l.id,
                bytes(rw),
                bytes(books)
            ),
        );
    }
    if let (Some(now), Some(base)) = (process_hugetlb_bytes(), baseline) {
        checks.check(
            now - base.min(now) == huge_mapped,
            format!(
                "HugetlbPages grew by {}, the provider maps {} of hugepages",
                bytes(now - base.min(now)),
                bytes(huge_mapped)
            ),
        );
    }
    if let Some(h) = inventory().iter().find(|h| h.page_size == 2 * MIB) {
        println!(
            "  the machine now: 2 MiB pages total {}, free {} (other processes count too)",
            h.total, h.free
        );
    }
}

/// Who holds which address range, for the pictures.
struct Owners {
    ranges: Vec<(Range<usize>, char, String)>,
}

impl Owners {
    fn new(alloc: &Chunk, pools: &[(&Mempool, char)]) -> Owners {
        let a = alloc.as_ptr().as_ptr() as usize;
        // The chunk's whole pages are its own.
        let mut ranges = vec![(a..a + alloc.mapped_len(), 'A', "the allocation".to_string())];
        for (pool, c) in pools {
            pool.for_each_chunk(|ch| {
                let s = ch.addr.as_ptr() as usize;
                ranges.push((s..s + ch.len, *c, format!("'{}' chunk", pool.name())));
            });
            if let Some(r) = pool.ring_memory_range() {
                ranges.push((r, 'r', format!("'{}' ring", pool.name())));
            }
        }
        Owners { ranges }
    }

    /// The letter of whoever covers most of `cell`, preferring holders
    /// that start in it (so a small one, a ring, is never hidden by its
    /// neighbour).
    fn letter(&self, cell: &Range<usize>) -> Option<char> {
        self.ranges
            .iter()
            .map(|(r, c, _)| {
                let overlap = r.end.min(cell.end).saturating_sub(r.start.max(cell.start));
                (cell.contains(&r.start), overlap, *c)
            })
            .filter(|&(_, n, _)| n > 0)
            .max_by_key(|&(starts, n, _)| (starts, n))
            .map(|(_, _, c)| c)
    }

    /// Who holds parts of `page`.
    fn describe(&self, page: Range<usize>) -> String {
        let mut names: Vec<&str> = self
            .ranges
            .iter()
            .filter(|(r, _, _)| overlaps(r, &page))
            .map(|(_, _, n)| n.as_str())
            .collect();
        names.dedup();
        if names.is_empty() {
            return "-".into();
        }
        let n = names.len();
        let mut s = names[..n.min(2)].join(", ");
        if n > 2 {
            let _ = write!(s, " +{}", n - 2);
        }
        s
    }
}

/// `width` cells over `span`, each drawn by `cell`.
fn bar(span: Range<usize>, width: usize, mut cell: impl FnMut(Range<usize>) -> char) -> String {
    let step = (span.end - span.start).div_ceil(width).max(1);
    (0..width)
        .map(|i| {
            let s = span.start + i * step;
            cell(s..(s + step).min(span.end).max(s + 1))
        })
        .collect()
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// How a list's pages are backed.
fn backing(l: &ListInfo) -> String {
    let mut s = if l.external {
        "external memory".to_string()
    } else if l.shareable {
        "fd-backed (shareable)".to_string()
    } else {
        "anonymous".to_string()
    };
    if !l.locked {
        s.push_str(", NOT locked (mlock failed: see `ulimit -l`)");
    }
    s
}

/// The kernel's default hugepage size (`Hugepagesize:` in /proc/meminfo).
fn default_hugepage_size() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("Hugepagesize:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn heading(title: &str) {
    println!();
    println!(
        "== {title} {}",
        "=".repeat(72usize.saturating_sub(title.len()))
    );
}

/// `b` bytes, in the largest binary unit, with one decimal when not whole.
fn bytes(b: usize) -> String {
    const UNITS: [(usize, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (u, name) in UNITS {
        if b >= u {
            return if b % u == 0 {
                format!("{} {name}", b / u)
            } else {
                format!("{:.1} {name}", b as f64 / u as f64)
            };
        }
    }
    format!("{b} B")
}

fn opt_bytes(b: Option<usize>) -> String {
    b.map_or("unknown".into(), bytes)
}

fn iova_str(i: Option<pktmem::hugemem::Iova>) -> String {
    i.map_or("none".into(), |i| format!("{:#x}", i.0))
}

/// Prints `text` indented by `indent` spaces, wrapped to 92 columns
/// (continuation lines indented two more).
fn say(indent: usize, text: &str) {
    for (i, line) in wrap(text, 92 - indent - 2).iter().enumerate() {
        let pad = if i == 0 { indent } else { indent + 2 };
        println!("{}{line}", " ".repeat(pad));
    }
}

/// Splits `s` into lines of at most `n` characters at spaces.
fn wrap(s: &str, n: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    for w in s.split(' ') {
        let last = out.last_mut().expect("never empty");
        if !last.is_empty() && last.len() + 1 + w.len() > n {
            out.push(w.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(w);
        }
    }
    out
}

/// Checks run so far: each printed as it is made.
#[derive(Default)]
struct Checks {
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: String) {
        if ok {
            say(2, &format!("ok    {what}"));
            self.passed += 1;
        } else {
            self.fail(what);
        }
    }

    fn fail(&mut self, what: String) {
        say(2, &format!("FAIL  {what}"));
        self.failed.push(what);
    }
}
