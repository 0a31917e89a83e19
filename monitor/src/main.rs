//! `berth-monitor R`: the per-container monitor (see `berth::monitor`). Started by
//! `berth::monitor::launch::spawn`, never by hand except for debugging.

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(run_dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: berth-monitor <run dir>");
        std::process::exit(2);
    };
    std::process::exit(berth_monitor::main(std::path::Path::new(&run_dir)));
}
