//! Subcommands. Each module turns parsed arguments into a library call and prints the result.

mod embed;
mod generate;
mod inspect;
mod plot;
mod pretrain;
mod progress;
mod run;
mod transfer;

use clap::{Parser, Subcommand};
use s2kit::Result;

#[derive(Parser, Debug)]
#[command(
    name = "s2kit",
    version,
    about = "Synthetic series-symbol corpora for time-series foundation models",
    long_about = "Generate series-symbol corpora (inputs x, symbolic expressions f, outputs y = f(x), and \
ODE-driven series) into HDF5 shards, inspect and plot them, pretrain a SymTime-style series-symbol \
model on them, and evaluate encoders on real UCR/UEA classification sets. `s2kit run \
recipes/quickstart.toml` does all of it."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Generate(generate::GenerateArgs),
    Merge(generate::MergeArgs),
    Inspect(inspect::InspectArgs),
    Plot(plot::PlotArgs),
    Run(run::RunArgs),
    Pretrain(pretrain::PretrainArgs),
    Transfer(transfer::TransferArgs),
    Embed(embed::EmbedArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Merge(a) => generate::merge(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Run(a) => run::run(a),
        Command::Pretrain(a) => pretrain::run(a),
        Command::Transfer(a) => transfer::run(a),
        Command::Embed(a) => embed::run(a),
    }
}
