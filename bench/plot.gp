# bench/plot.gp: the chart of bench/compare.sh.
# gnuplot -e "datafile='...'; outfile='...'; term='pngcairo'; subtitle='...'" bench/plot.gp
# datafile columns: config gbps1 gbps4 gbpsR cpu1 cpu4 cpuR (medians; ? = missing)
if (!exists("term")) term = "pngcairo"
if (!exists("subtitle")) subtitle = ""
if (term eq "pngcairo") {
    set terminal pngcairo size 1200,900 font "sans,10"
} else {
    set terminal png size 1200,900
}
set output outfile
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top right
set xtics rotate by -25 nomirror
set yrange [0:*]
set multiplot layout 2,1 title "spliced vs HAProxy vs Go vs direct, loopback (proxy on CPU 0, iperf3 on CPU 1)\n".subtitle

set title "Bulk throughput (iperf3), Gbit/s: higher is better"
set ylabel "Gbit/s"
plot datafile using 2:xtic(1) title "1 stream" lc rgb "#1f77b4", \
     ''       using 3 title "4 streams" lc rgb "#2ca02c", \
     ''       using 4 title "reverse (-R)" lc rgb "#ff7f0e"

set title "Proxy CPU seconds per GB moved (utime+stime / 1e9 bytes): lower is better"
set ylabel "CPU s / GB"
plot datafile using 5:xtic(1) title "1 stream" lc rgb "#1f77b4", \
     ''       using 6 title "4 streams" lc rgb "#2ca02c", \
     ''       using 7 title "reverse (-R)" lc rgb "#ff7f0e"
unset multiplot
