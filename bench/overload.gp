# Goodput against offered load, per class, for each proxy: the plot of bench/overload.
#
#   gnuplot -e "outdir='bench/out/overload-STAMP'; png='bench/overload.png'; cap=2000; \
#               proxies='gateway nginx haproxy'" bench/overload.gp
#
# Reads OUTDIR/PROXY.dat (written by bench/overload; columns described in their
# header). Four panels: critical, normal, sheddable, all classes; x = offered load
# in units of C (log scale), y = 2xx answers per second. The dashed grey line is
# the ideal with strict priorities and no waste: each class gets
# min(its offered load, what the classes above it leave of C).
if (!exists("outdir")) outdir = "bench/out"
if (!exists("png")) png = outdir."/overload.png"
if (!exists("cap")) cap = 2000
if (!exists("proxies")) proxies = "gateway nginx haproxy"
if (!exists("plot_title")) plot_title = sprintf("Goodput against offered load (C = %d req/s)", cap)

set terminal pngcairo size 1800,520 font "sans,10"
set output png
set datafile commentschars "#"
set logscale x 2
set format x "%gx"
set xtics (0.1, 0.25, 0.5, 1, 2, 4, 8)
set xlabel "offered load (x C)"
set ylabel "goodput (2xx/s)"
set grid
set yrange [0:cap * 1.1]
set offsets graph 0.03, graph 0.03, 0, 0

titles = "critical normal sheddable all"
cols = "4 6 8 9"
ideals = "10 11 12 13"
first = word(proxies, 1)

set multiplot layout 1,4 title plot_title
do for [i=1:4] {
    set title sprintf("%s (%s)", word(titles, i), \
        i == 1 ? "20%" : i == 2 ? "30%" : i == 3 ? "50%" : "total")
    if (i == 4) { set key bottom right box opaque } else { unset key }
    c = int(word(cols, i))
    k = int(word(ideals, i))
    plot for [j=1:words(proxies)] outdir."/".word(proxies, j).".dat" using 1:(column(c)) \
             with linespoints lw 2 pt (j == 1 ? 7 : j == 2 ? 5 : 9) ps 1 title word(proxies, j), \
         outdir."/".first.".dat" using 1:(column(k)) with lines dt 2 lw 1.5 lc rgb "black" \
             title "ideal", \
         cap with lines dt 3 lw 1.5 lc rgb "#a0a0a0" title "C"
}
unset multiplot
