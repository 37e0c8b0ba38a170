# Renders bench/run's plot: relay throughput vs backlog, commit throughput vs
# threads. Usage: gnuplot -e "datadir='bench/out'; outfile='bench/results.png'" bench/plot.gp
set terminal pngcairo size 1280,520 font "sans,10" noenhanced
set output outfile
set datafile missing "?"
set key autotitle columnhead
set grid
set logscale xy
set format y "%.0s%c"
set multiplot layout 1,2

set title "Relay: delivered events/s vs backlog (no-op publisher)"
set xlabel "backlog (events)"
set ylabel "events/s"
set format x "%.0s%c"
set key bottom left
# Columns: ours, rocksdb, sqlite for delete-after-send (solid), then for mark-sent (dashed),
# then the raw read-only pass (dotted).
set style line 2 lc 1 lw 2 pt 7 dt 1
set style line 3 lc 2 lw 2 pt 7 dt 1
set style line 4 lc 3 lw 2 pt 7 dt 1
set style line 5 lc 1 lw 2 pt 6 dt 2
set style line 6 lc 2 lw 2 pt 6 dt 2
set style line 7 lc 3 lw 2 pt 6 dt 2
set style line 8 lc rgb "black" lw 2 pt 2 dt 3
plot for [i=2:8] datadir."/relay_backlog.dat" using 1:i with linespoints ls i

set title "Commit sync=true: commits/s vs committing threads"
set xlabel "threads"
set ylabel "commits/s"
set format x "%.0f"
set xtics (1, 4, 16, 64)
set key top left
plot for [i=2:4] datadir."/commit_threads.dat" using 1:i with linespoints ls i

unset multiplot
