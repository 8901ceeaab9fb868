# bench/plot.gp: the chart of bench/compare.sh, with the spread.
# gnuplot -e "datafile='...'; outfile='...'; term='pngcairo'; subtitle='...'" bench/plot.gp
# datafile columns: config, then for 1 stream / 4 streams / reverse:
# Gbit/s median min max (cols 2-10), then CPU s/GB median min max (cols 11-19),
# then proxy CPU us per short connection and per keep-alive request, median
# min max (cols 20-25); ? = missing. Bars are medians, error bars span min to max over the reps.
if (!exists("term")) term = "pngcairo"
if (!exists("subtitle")) subtitle = ""
if (term eq "pngcairo") {
    set terminal pngcairo size 1400,1350 font "sans,10"
} else {
    set terminal png size 1400,1350
}
set output outfile
set datafile missing "?"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set bars 0.6
set grid ytics
set key top right
set xtics rotate by -25 nomirror
set yrange [0:*]
set multiplot layout 3,1 title "Proxies on loopback: proxy on CPU 0, iperf3 on CPU 1 (bars: median; error bars: min-max over the reps)\n".subtitle

set title "Bulk throughput (iperf3), Gbit/s: higher is better"
set ylabel "Gbit/s"
plot datafile using 2:3:4:xtic(1) title "1 stream" lc rgb "#1f77b4", \
     ''       using 5:6:7 title "4 streams" lc rgb "#2ca02c", \
     ''       using 8:9:10 title "reverse (-R)" lc rgb "#ff7f0e"

set title "Proxy CPU seconds per GB moved (utime+stime / 1e9 bytes): lower is better"
set ylabel "CPU s / GB"
plot datafile using 11:12:13:xtic(1) title "1 stream" lc rgb "#1f77b4", \
     ''       using 14:15:16 title "4 streams" lc rgb "#2ca02c", \
     ''       using 17:18:19 title "reverse (-R)" lc rgb "#ff7f0e"

set title "Proxy CPU per 1 KiB exchange, microseconds: lower is better"
set ylabel "CPU us"
plot datafile using 20:21:22:xtic(1) title "per short connection (connect, 1 KiB each way, close)" lc rgb "#9467bd", \
     ''       using 23:24:25 title "per keep-alive request (1 KiB each way)" lc rgb "#8c564b"
unset multiplot
