package bench

// history is kept by hand and printed at the end of every report, so that a
// rerun does not erase what an optimisation changed. Add a dated entry, with
// the commands and the load average, when a change moves a figure.
const history = `## Before and after

(filled in below)
`
