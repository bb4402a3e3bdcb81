//! Time the core alone: `cargo run --release --example encode_file -- MODEL_DIR FILE...`
use std::time::Instant;

use fastbert_core::{batch, EncodeOptions, Input, Tokenizer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let t = Instant::now();
    let tok = Tokenizer::from_path(std::path::Path::new(&args[1])).expect("load");
    println!("load: {:.3}s", t.elapsed().as_secs_f64());
    let mut text = String::new();
    for f in &args[2..] {
        text.push_str(&std::fs::read_to_string(f).expect("read"));
    }
    let lines: Vec<&str> = text.lines().collect();
    let inputs: Vec<Input> = lines.iter().map(|l| Input::Text(l)).collect();
    for threads in [1, 1, 1, 1] {
        let t = Instant::now();
        let encs = batch::encode_batch(
            &tok,
            &inputs,
            None,
            &EncodeOptions::default(),
            Some(threads),
        )
        .unwrap();
        let s = t.elapsed().as_secs_f64();
        let n: usize = encs.iter().map(|e| e.len()).sum();
        println!(
            "{threads} threads: {:.3}s, {:.1} MB/s, {n} tokens",
            s,
            text.len() as f64 / s / 1e6
        );
    }
}
