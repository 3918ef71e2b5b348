"""The app layer: the commands a user runs (cli), and the orchestration that chains the layers below it
(demo, sweep/pick, bundle). The only layer that may import both export and bench."""
