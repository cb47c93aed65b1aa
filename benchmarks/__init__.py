"""Development investigations that are not paper tables: before/after timings against an older commit,
fused against plain attention, where inference time goes. Each is regenerable with
`python -m benchmarks NAME [--quick]` and writes results/NAME.md (with the machine, backends and
versions in its header) like the paper tables of `reproduce/`, whose helpers it shares."""
