//! `firstcome-loadtest`: the load generator. A later issue builds it out; for now it only says so.

fn main() {
    eprintln!("firstcome-loadtest: not built yet; see the open issue on measuring firstcome");
}
