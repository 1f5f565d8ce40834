"""A dependency-free SVG plot of the soak's samples: three panels (RSS, descriptors, CPU)
against minutes, one line per ringlet process (the highest sample per 2 px; the load
generator's line in the CPU panel only), the warm-up shaded, client restarts as dotted
vertical lines and each role's RSS and descriptor bounds as dashed horizontal lines."""
from xml.sax.saxutils import escape

COLORS = {"server": "#1f77b4", "client-a": "#d62728", "client-b": "#2ca02c", "load": "#999"}
W, PH, ML, MR, MT, GAP = 960, 200, 70, 130, 40, 50
PANELS = [(3, "RSS (MiB)", 1 / 1024.0, 0), (4, "open descriptors", 1.0, 1), (5, "CPU (%)", 1.0,
                                                                             None)]


def _nice_max(v):
    if v <= 0:
        return 1.0
    for m in (1, 2, 2.5, 5, 10):
        step = m * 10 ** (len(str(int(v))) - 1)
        if step >= v:
            return float(step)
    return float(v)


def _thin(pts, px=2.0):
    """One point per px of x: the highest value (the smallest y) in each, so peaks stay."""
    out = []
    for x, y in pts:
        if out and int(x / px) == int(out[-1][0] / px):
            if y < out[-1][1]:
                out[-1] = (out[-1][0], y)
        else:
            out.append((x, y))
    return out


def write(path, samples, roles, restarts, warm, limits, title):
    tmax = max([x[0] for x in samples] + [1.0])
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (W, MT + 3 * (PH + GAP)),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="20" font-size="15">%s</text>' % (ML, escape(title))]
    pw = W - ML - MR

    def X(t):
        return ML + pw * t / tmax

    for i, (col, label, scale, lim_idx) in enumerate(PANELS):
        top = MT + i * (PH + GAP)
        # The load generator's own RSS and descriptors would only squash the scale.
        shown = [r for r in roles if r != "load" or lim_idx is None]
        vals = [x[col] * scale for x in samples if x[1] in shown]
        lims = [v[lim_idx] * scale for v in limits.values()] if lim_idx is not None else []
        vmax = _nice_max(max(vals + lims + [0.0]) * 1.05)

        def Y(v):
            return top + PH - PH * v / vmax

        out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#eee"/>' %
                   (X(0), top, X(warm[0]) - X(0), PH))
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>' %
                   (ML, top, pw, PH))
        for k in range(5):
            v = vmax * k / 4
            out.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' %
                       (ML - 5, Y(v) + 4, round(v, 1)))
        out.append('<text x="%d" y="%d" font-weight="bold">%s</text>' % (ML, top - 6, label))
        for t, role, _ in restarts:
            out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" '
                       'stroke-dasharray="2,3"/>' % (X(t), X(t), top, top + PH,
                                                     COLORS.get(role, "#888")))
        for role in shown:
            pts = _thin([(X(x[0]), Y(x[col] * scale)) for x in samples if x[1] == role])
            if pts:
                out.append('<polyline fill="none" stroke="%s" stroke-width="1.2" points="%s"/>'
                           % (COLORS.get(role, "#000"),
                              " ".join("%.1f,%.1f" % p for p in pts)))
            if role in limits and lim_idx is not None:
                y = Y(limits[role][lim_idx] * scale)
                out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" '
                           'stroke-dasharray="8,4" opacity="0.7"/>' %
                           (ML, ML + pw, y, y, COLORS.get(role, "#000")))
        for k in range(6):
            t = tmax * k / 5
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%.1f min</text>' %
                       (X(t), top + PH + 15, t / 60))
    for j, role in enumerate(roles):
        y = MT + 20 * j + 10
        out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>' %
                   (W - MR + 10, W - MR + 30, y, y, COLORS.get(role, "#000")))
        out.append('<text x="%d" y="%d">%s</text>' % (W - MR + 35, y + 4, role))
    y = MT + 20 * len(roles) + 10
    out.append('<text x="%d" y="%d" font-size="10">shaded: warm-up</text>' % (W - MR + 10, y))
    out.append('<text x="%d" y="%d" font-size="10">dotted: restart</text>' %
               (W - MR + 10, y + 14))
    out.append('<text x="%d" y="%d" font-size="10">dashed: bound</text>' %
               (W - MR + 10, y + 28))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
