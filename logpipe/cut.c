/* The split plan's cut, run natively (logpipe/native.py builds and loads this file; splitplan.py says
 * what a plan is and why cutting a line at its quotes and spaces reads it as the grammar does).
 *
 * This file knows no layout: it runs whatever plan Python hands it, so the grammar stays the one
 * description of the syntax. For each line it finds the double quotes (there must be exactly
 * nseg - 1), cuts each segment at its single spaces into its tokens (left tokens from the left, then
 * the free token, then right tokens from the right), and writes each wanted token as an Arrow
 * string view into the line data. A line whose quotes or spaces do not fit the plan gets ok = 0 and
 * its views are empty: Python gives it to the whole-line capture regex. logpipe_compact then copies
 * each token's longer texts (over 12 bytes; shorter ones sit inside their view) into a buffer of its
 * own: a column that points into the whole batch's lines costs polars cache misses when it hashes,
 * matches or copies it (~2x slower), and would keep the batch's lines alive.
 *
 * Bounds: every read is inside line i: its view's bytes, inside its buffer (checked here; a line
 * that is not is not cut), or inside data[offs[i]:offs[i + 1]] (JSON: Python checks they lie inside
 * data, and only calls this for data under 2 GiB, as views hold 32-bit offsets). Tokens end at quotes, spaces
 * and whole literals, so a token of valid UTF-8 text is valid UTF-8, whatever the line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_SEGMENT_TOKENS 64

typedef struct {
    int32_t len;
    union {
        uint8_t inline_data[12];
        struct { uint8_t prefix[4]; int32_t buffer; int32_t offset; } ref;
    } u;
} view_t;

/* A view of data[start:start + len], data being buffer `buffer` of the views' buffers, of which
 * `room` bytes from start can be read. A text of at most 12 bytes sits in the view, the bytes after
 * it zero: read as two words where 12 bytes can be (no call of memset and memcpy: ~10% of the cut). */
static void put_view(view_t *v, const uint8_t *data, int64_t start, int64_t len, int32_t buffer, int64_t room)
{
    v->len = (int32_t)len;
    if (len > 12) {
        memcpy(v->u.ref.prefix, data + start, 4);
        v->u.ref.buffer = buffer;
        v->u.ref.offset = (int32_t)start;
        return;
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (room >= 12) {
        uint64_t lo;
        uint32_t hi;
        memcpy(&lo, data + start, 8);
        memcpy(&hi, data + start + 8, 4);
        lo &= len >= 8 ? ~(uint64_t)0 : ((uint64_t)1 << (8 * len)) - 1u;
        hi &= len >= 12 ? ~(uint32_t)0 : len <= 8 ? 0u : ((uint32_t)1 << (8 * (len - 8))) - 1u;
        memcpy(v->u.inline_data, &lo, 8);
        memcpy(v->u.inline_data + 8, &hi, 4);
        return;
    }
#endif
    (void)room;
    memset(v->u.inline_data, 0, 12);
    for (int64_t k = 0; k < len; k++)
        v->u.inline_data[k] = data[start + k];
}

/* Whether a[0:n] == b[0:n]: the few bytes of a literal around a token ("[", "]"), where a call of
 * memcmp cost ~10% of logpipe_cut. */
static int same(const uint8_t *a, const uint8_t *b, int32_t n)
{
    for (int32_t k = 0; k < n; k++)
        if (a[k] != b[k])
            return 0;
    return 1;
}

/* The token bounds of one segment [s, e) into start/end, sp[0:cnt] being the positions of its spaces;
 * 0 when the segment does not fit: exactly `left` tokens (left - 1 single spaces between them: the plan
 * put every space of the segment between tokens), or with a free token, `left` tokens from the left,
 * `right` from the right, and the free token between them (it may hold spaces, or be empty). */
static int cut_segment(int64_t s, int64_t e, const int64_t *sp, int64_t cnt, int32_t left, int32_t free_,
                       int32_t right, int64_t *start, int64_t *end)
{
    if (!free_) {
        if (left == 0)
            return s == e;
        if (cnt != left - 1)
            return 0;
        for (int32_t k = 0; k < left; k++) {
            start[k] = k ? sp[k - 1] + 1 : s;
            end[k] = k + 1 < left ? sp[k] : e;
        }
        return 1;
    }
    if (cnt < (int64_t)left + right)
        return 0;
    for (int32_t k = 0; k < left; k++) {
        start[k] = k ? sp[k - 1] + 1 : s;
        end[k] = sp[k];
    }
    start[left] = left ? sp[left - 1] + 1 : s;
    end[left] = right ? sp[cnt - right] : e;
    for (int32_t r = 0; r < right; r++) {  /* right tokens, from the right */
        start[left + right - r] = sp[cnt - 1 - r] + 1;
        end[left + right - r] = r ? sp[cnt - r] : e;
    }
    return 1;
}

/* The double quotes, spaces and tabs of data[a:b], in one pass (16 bytes at a time where SSE2 is):
 * the first maxq quotes' positions to qpos and the number of spaces before each to qsp (both with
 * room for maxq + 1), every space's position to sp (room for b - a + 1), the number of spaces to
 * *nsp, whether there is a tab to *tab. Returns the number of quotes (all of them, also past maxq). */
static int64_t scan_line(const uint8_t *data, int64_t a, int64_t b, int64_t *qpos, int64_t *qsp, int64_t maxq,
                         int64_t *sp, int64_t *nsp, int *tab)
{
    int64_t i = a, q = 0, ns = 0;
    unsigned tabs = 0;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), space = _mm_set1_epi8(' '), tabc = _mm_set1_epi8('\t');
    for (; i + 16 <= b; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(data + i));
        unsigned mq = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, quote));
        unsigned ms = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, space));
        tabs |= (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, tabc));
        /* each quote or space in order, with no branch on which it is: a space's position is written
         * at sp[ns] either way (a quote's is overwritten), a quote's at qpos[q] (q past maxq: slot maxq) */
        for (unsigned m = mq | ms; m; m &= m - 1) {
            int k = __builtin_ctz(m);
            unsigned is_quote = (mq >> k) & 1u;
            int64_t slot = q < maxq ? q : maxq;
            sp[ns] = qpos[slot] = i + k;
            qsp[slot] = ns;
            ns += 1u - is_quote;
            q += is_quote;
        }
    }
#endif
    for (; i < b; i++) {
        uint8_t c = data[i];
        if (c == '"') {
            if (q < maxq) {
                qpos[q] = i;
                qsp[q] = ns;
            }
            q++;
        } else if (c == ' ') {
            sp[ns++] = i;
        } else {
            tabs |= c == '\t';
        }
    }
    *nsp = ns;
    *tab = tabs != 0;
    return q;
}

/* Where the last byte c of data[s:e] is, or s - 1 when there is none (a Tail's separator). */
static int64_t last_at(const uint8_t *data, int64_t s, int64_t e, uint8_t c)
{
    int64_t k = e - 1;
    while (k >= s && data[k] != c)
        k--;
    return k;
}

/* put_view of text data[s:e]; returns its bytes when they are not in the view (over 12), else 0. */
static int64_t put_text(view_t *out, const uint8_t *data, int64_t s, int64_t e, int32_t buffer, int64_t size)
{
    put_view(out, data, s, e - s, buffer, size - s);
    return e - s > 12 ? e - s : 0;
}

/* Whether p[0:n] is accepted by a token's DFA (logpipe/dfa.py): cls maps a byte to its class; a
 * state is the offset of its row of ncls next states in tab (so the walk does no multiplication),
 * 0 the dead state, ncls the start; acc[state / ncls] whether it accepts; a state from first_sink
 * on accepts whatever text the cut can give the token: the walk stops there. */
static int dfa_run(const uint8_t *p, int64_t n, const uint8_t *cls, const uint16_t *tab, const uint8_t *acc,
                   int32_t ncls, int32_t first_sink)
{
    /* st - 1 < first_sink - 1 (unsigned): neither dead (0: it wraps) nor a sink, in one test. It is
     * made every fourth byte (~2x fewer instructions a byte): a walk may go on a few bytes past the
     * dead state, which only leads to itself, or past a sink, from which the rest of the token (text
     * the cut gives: valid UTF-8 without its excluded bytes) is accepted, whatever states it passes. */
    uint32_t st = (uint32_t)ncls, live = (uint32_t)first_sink - 1u;
    const uint8_t *end = p + n;
    for (; end - p >= 4 && st - 1u < live; p += 4) {
        st = tab[st + cls[p[0]]];
        st = tab[st + cls[p[1]]];
        st = tab[st + cls[p[2]]];
        st = tab[st + cls[p[3]]];
    }
    for (; p < end && st - 1u < live; p++)
        st = tab[st + cls[*p]];
    return acc[st / (uint32_t)ncls];
}

/* ---- typed tokens: a token whose column is a number or a time is typed here, not by polars --------
 * kinds (out_kind): 0 text (a view); 1 an int32, 2 an int64 (digits only, at most 18, and at most
 * 2^31 - 1 for an int32); 3 a time: YYYY-MM-DDTHH:MM:SS, 1 to 6 digits of fraction or none, and Z,
 * a real date and time of years 1 to 9999, as microseconds since 1970 (UTC); 4 text (a view) with a
 * validity bit. "-" and empty text are null, as records.py makes them (null_empty). Any other text
 * is not read here: the line is not cut, and the whole-line regex and records.py type it (or
 * reject it) as before, so what is typed here is only what they would give alike. */

enum { TEXT = 0, INT32 = 1, INT64 = 2, TIME_US = 3, NULLED_TEXT = 4 };

static int digits(const uint8_t *p, int n, int64_t *v)
{
    int64_t x = 0;
    for (int k = 0; k < n; k++) {
        if (p[k] < '0' || p[k] > '9')
            return 0;
        x = x * 10 + (p[k] - '0');
    }
    *v = x;
    return 1;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400, yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1, doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int read_time(const uint8_t *p, int64_t n, int64_t *us)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t y, mo, d, h, mi, s, frac = 0;
    if (n < 20 || p[n - 1] != 'Z' || p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':'
        || !digits(p, 4, &y) || !digits(p + 5, 2, &mo) || !digits(p + 8, 2, &d) || !digits(p + 11, 2, &h)
        || !digits(p + 14, 2, &mi) || !digits(p + 17, 2, &s))
        return 0;
    int64_t nf = n - 21;  /* digits of fraction, after a "." */
    if (n > 20) {
        if (p[19] != '.' || nf < 1 || nf > 6 || !digits(p + 20, (int)nf, &frac))
            return 0;
        for (int64_t k = nf; k < 6; k++)
            frac *= 10;
    }
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 || s > 59)
        return 0;
    *us = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 * 1000000 + s * 1000000 + frac;
    return 1;
}

/* Token text p[0:n] as a value of kind: 1 when read (*null says whether it is null), 0 when not. */
static int read_typed(const uint8_t *p, int64_t n, int32_t kind, int64_t *v, int *null)
{
    *null = n == 0 || (n == 1 && p[0] == '-');
    if (*null)
        return 1;
    if (kind == TIME_US)
        return read_time(p, n, v);
    return n <= 18 && digits(p, (int)n, v) && (kind != INT32 || *v <= 2147483647);
}

static void set_valid(uint8_t *valid, int64_t r, int null)
{
    if (null)
        valid[r >> 3] &= (uint8_t)~(1u << (r & 7));
    else
        valid[r >> 3] |= (uint8_t)(1u << (r & 7));
}

static void put_typed(int64_t *nums, uint8_t *valid, int32_t kind, int64_t r, int64_t v, int null)
{
    if (kind == INT32)
        ((int32_t *)nums)[r] = (int32_t)v;
    else
        nums[r] = v;
    set_valid(valid, r, null);
}

/* A plan of the cut (splitplan.py reads it from the grammar): nseg segments, each of seg_left[j] tokens
 * from the left, seg_free[j] (0 or 1) free tokens, seg_right[j] tokens from the right; ntok wanted
 * tokens, token t being segment tok_seg[t]'s token tok_index[t] (among its left, free, right ones),
 * less its literal text: the tok_lstrip[t] bytes at lits + tok_loff[t] before it and the
 * tok_rstrip[t] bytes at lits + tok_roff[t] after it, which must be there. Token t is written to
 * output column tok_col[t]; with tok_split[t] != 0 (a Tail in splitplan.py) it is also cut at its
 * last byte tok_split[t], the text before it to column tok_part[t], the text after it to column
 * tok_part[t] + 1 (the whole token and nothing when it holds no such byte). out_kind (NULL: all
 * text) says how token t is written (typed tokens, below). With chk (not NULL), a line is cut only
 * when each of nchk tokens (7 ints each in chk: segment, index, offsets of its DFA's classes, table
 * and accepting flags in dfa_cls, dfa_tab and dfa_acc, its number of classes, its first sink's row)
 * is accepted by its DFA: then the line matches the layout's whole-line regex (logpipe/dfa.py); a
 * line holding a tab is not cut then, whatever nchk (the DFAs count on none; tokens whose DFA
 * accepts every text without a quote, space or tab are not given: nativecut.checks). The nabsent
 * output columns at absent are those this plan does not write: a line it cuts has them null.
 * chk_skip (NULL: none) marks the checks of typed tokens whose regex accepts every value read_typed
 * reads (nativecut._deferred): such a token's DFA is walked only when it reads as null ("-" or empty
 * text, which its regex may refuse), as check tok_chk[t] of chk (-1: none). */
typedef struct {
    int32_t nseg;
    const int32_t *seg_left, *seg_free, *seg_right;
    int32_t ntok;
    const int32_t *tok_seg, *tok_index, *tok_lstrip, *tok_rstrip, *tok_loff, *tok_roff;
    const uint8_t *lits, *tok_split;
    const int32_t *tok_col, *tok_part, *out_kind;
    int32_t nchk;
    const int32_t *chk;
    const uint8_t *dfa_cls;
    const uint16_t *dfa_tab;
    const uint8_t *dfa_acc;
    int32_t nabsent;
    const int32_t *absent;
    const uint8_t *chk_skip;
    const int32_t *tok_chk;
} plan_t;

/* Whether the token of check c of plan P is accepted by its DFA. */
static int check(const plan_t *P, int32_t c, const uint8_t *data, int64_t (*tok_start)[MAX_SEGMENT_TOKENS],
                 int64_t (*tok_end)[MAX_SEGMENT_TOKENS])
{
    const int32_t *k = P->chk + 7 * c;
    int64_t s = tok_start[k[0]][k[1]], e = tok_end[k[0]][k[1]];
    return dfa_run(data + s, e - s, P->dfa_cls + k[2], P->dfa_tab + k[3], P->dfa_acc + k[4], k[5], k[6]);
}

/* What a plan makes of a line: NO, it does not match the plan's layout (known for a checked plan
 * from a line with exactly its quotes: the one way to read it failed); FIT, cut; STOP, it may match
 * the layout but this cut cannot tell (a tab, the glue mark twice, a value it does not type):
 * the line is left to the whole-line regex, and later plans are not tried. */
enum { NO = 0, FIT = 1, STOP = 2 };

/* The output of a cut: n rows of ncol columns. Column c's row r: out[c * n + r] (a view), its
 * number or time at nums + 8 * n * c, its validity bit r at valid + ((n + 7) / 8) * c; added[c]:
 * the line's bytes over 12 of column c's text, added to bytes[c] once the line is cut. col_valid[c]:
 * a text column with a validity bit (one that some plan does not write). */
typedef struct {
    int64_t n;
    view_t *out;
    int64_t *nums;
    uint8_t *valid;
    const uint8_t *col_valid;
    int64_t *added;
} output_t;

/* Line data[a:b] (its quotes, spaces and tab found by scan_line, exactly P->nseg - 1 quotes) by plan
 * P, written to row `row` of o (which counts only once the caller commits it). */
static int try_plan(const plan_t *P, const uint8_t *data, int64_t a, int64_t b, int32_t buffer, int64_t size,
                    const int64_t *qpos, const int64_t *qsp, const int64_t *sp, int64_t nsp, int tab,
                    const uint8_t *glue, int32_t glue_len, const output_t *o, int64_t row,
                    int64_t (*tok_start)[MAX_SEGMENT_TOKENS], int64_t (*tok_end)[MAX_SEGMENT_TOKENS])
{
    int32_t nseg = P->nseg;
    int no = P->chk ? NO : STOP;  /* a plan that checks nothing proves nothing */
    int64_t n = o->n, vb = (n + 7) / 8;
    if (P->chk && tab)  /* a tab: not cut when checked (dfa.py) */
        return STOP;
    if (glue_len > 1) {  /* the glue mark ends at two of its quotes: two lines glued? */
        int32_t marks = 0;
        for (int32_t j = 0; j + 1 < nseg; j++)
            marks += qpos[j] - a >= glue_len - 1 && same(data + qpos[j] - (glue_len - 1), glue, glue_len - 1);
        if (marks >= 2)
            return STOP;
    }
    for (int32_t j = 0; j < nseg; j++) {
        int64_t lo = j ? qsp[j - 1] : 0, hi = j + 1 < nseg ? qsp[j] : nsp;  /* its spaces */
        if (!cut_segment(j ? qpos[j - 1] + 1 : a, j + 1 < nseg ? qpos[j] : b, sp + lo, hi - lo,
                         P->seg_left[j], P->seg_free[j], P->seg_right[j], tok_start[j], tok_end[j]))
            return no;
    }
    for (int32_t c = 0; c < P->nchk; c++)  /* every token matches its regex */
        if (!(P->chk_skip && P->chk_skip[c]) && !check(P, c, data, tok_start, tok_end))
            return no;
    /* Each token, in one pass: its literal text is there, and its value (typed, or a view) is written */
    for (int32_t t = 0; t < P->ntok; t++) {
        int64_t s = tok_start[P->tok_seg[t]][P->tok_index[t]], e = tok_end[P->tok_seg[t]][P->tok_index[t]];
        if (!(e - s >= (int64_t)P->tok_lstrip[t] + P->tok_rstrip[t]
              && same(data + s, P->lits + P->tok_loff[t], P->tok_lstrip[t])
              && same(data + e - P->tok_rstrip[t], P->lits + P->tok_roff[t], P->tok_rstrip[t])))
            return no;
        s += P->tok_lstrip[t];
        e -= P->tok_rstrip[t];
        int32_t kind = P->out_kind ? P->out_kind[t] : TEXT, col = P->tok_col[t];
        if (kind != TEXT && kind != NULLED_TEXT) {  /* typed: read as its type, or the line is not cut */
            int64_t v = 0;
            int null;
            /* A value read is one its regex accepts (chk_skip). Else its check, and on a STOP those of
             * the later tokens: the same NO or STOP as if every check had been made first. */
            int read = read_typed(data + s, e - s, kind, &v, &null);
            for (int32_t u = t; (!read || (null && u == t)) && P->tok_chk && u < P->ntok; u++)
                if (P->tok_chk[u] >= 0 && !check(P, P->tok_chk[u], data, tok_start, tok_end))
                    return no;
            if (!read)
                return STOP;
            put_typed(o->nums + n * col, o->valid + vb * col, kind, row, v, null);
            continue;
        }
        o->added[col] = put_text(&o->out[(int64_t)col * n + row], data, s, e, buffer, size);
        if (kind == NULLED_TEXT)
            set_valid(o->valid + vb * col, row, e == s || (e - s == 1 && data[s] == '-'));
        else if (o->col_valid[col])
            set_valid(o->valid + vb * col, row, 0);
        if (P->tok_split[t]) {
            int64_t k = last_at(data, s, e, P->tok_split[t]), part = P->tok_part[t];
            o->added[part] = put_text(&o->out[part * n + row], data, s, k >= s ? k : e, buffer, size);
            o->added[part + 1] = put_text(&o->out[(part + 1) * n + row], data, k >= s ? k + 1 : e, e, buffer, size);
            if (o->col_valid[part]) {
                set_valid(o->valid + vb * part, row, 0);
                set_valid(o->valid + vb * (part + 1), row, 0);
            }
        }
    }
    return FIT;
}

/* Cut n lines (line i: the string view lines[i], into the nbuf buffers bufs of buf_size bytes: a
 * polars string column's own, as Arrow hands it out, not copied) by the first of nplan plans that
 * fits it, into row r of ncol output columns (output_t), r counting the lines cut before it (ok[i]
 * says which were: the first `returned` rows hold them); which[r] (when not NULL): the plan, and
 * doubt[r]: a bit for each earlier plan the line has more quotes than (it may be that plan's line with
 * quotes inside free text: Python asks its whole-line regex). Plans after a plan's STOP are not tried;
 * plans after a NO are, so a line cut by plan p matches no earlier plan's layout, but for doubt[r].
 * With glue_len > 1, a line is not cut when the glue mark (glue_len bytes ending in a double quote:
 * the text every start of an access line ends with, logpipe/parse.py) ends at two of its quotes: it
 * may be two lines glued together, which Python's check of the whole start then tells.
 * Returns the number of lines cut. */
int64_t logpipe_cut(const view_t *lines, const uint8_t *const *bufs, const int64_t *buf_size, int32_t nbuf, int64_t n,
                    int32_t nplan, const plan_t *plans, int32_t ncol, const uint8_t *col_valid,
                    view_t *out, uint8_t *ok, int64_t *bytes, int64_t *nums, uint8_t *valid,
                    uint8_t *which, uint32_t *doubt, const uint8_t *glue, int32_t glue_len)
{
    int32_t maxseg = 1;
    for (int32_t p = 0; p < nplan; p++)
        maxseg = plans[p].nseg > maxseg ? plans[p].nseg : maxseg;
    int64_t qpos[maxseg + 1], qsp[maxseg + 1];
    int64_t tok_start[maxseg][MAX_SEGMENT_TOKENS], tok_end[maxseg][MAX_SEGMENT_TOKENS];
    int64_t good = 0, room = 0, vb = (n + 7) / 8;
    int64_t *sp = NULL;  /* the spaces of a line: room for its every byte, and one more */
    int64_t added[ncol > 0 ? ncol : 1];  /* a line's bytes over 12 of each column's text, added once it is cut */
    memset(added, 0, sizeof added);
    output_t o = {n, out, nums, valid, col_valid, added};
    for (int64_t i = 0; i < n; i++) {
        /* line i: a string view, into buffer bufs[line->u.ref.buffer] or inline (a text of at most
         * 12 bytes, whose tokens are as short: their views hold their bytes) */
        const view_t *line = &lines[i];
        int32_t buffer = line->len > 12 ? line->u.ref.buffer : 0;
        int64_t a = line->len > 12 ? line->u.ref.offset : 0, b = a + line->len, nsp = 0;
        int32_t fits = line->len >= 0 && (line->len <= 12 || (buffer >= 0 && buffer < nbuf && a >= 0
                                                              && b <= buf_size[buffer]));
        const uint8_t *data = line->len > 12 ? (fits ? bufs[buffer] : NULL) : line->u.inline_data;
        int64_t size = line->len > 12 ? (fits ? buf_size[buffer] : 0) : 12;  /* bytes there are at data */
        if (fits && line->len >= room) {
            free(sp);
            room = line->len < 4096 ? 4096 : line->len + 1;
            if ((sp = malloc(sizeof *sp * (size_t)room)) == NULL) {
                room = 0;
                fits = 0;
            }
        }
        ok[i] = 0;
        if (!fits)
            continue;
        int tab;
        int64_t quotes = scan_line(data, a, b, qpos, qsp, maxseg - 1, sp, &nsp, &tab);
        int got = NO;
        int32_t p = 0;
        uint32_t more = 0;
        for (; p < nplan && got == NO; p++) {
            if (quotes != plans[p].nseg - 1) {  /* fewer quotes than the layout's: not its line */
                more |= quotes > plans[p].nseg - 1 ? 1u << (p & 31) : 0u;
                got = quotes > plans[p].nseg - 1 && !plans[p].chk ? STOP : NO;
                continue;
            }
            got = try_plan(&plans[p], data, a, b, buffer, size, qpos, qsp, sp, nsp, tab, glue, glue_len, &o, good,
                           tok_start, tok_end);
        }
        if (got != FIT)
            continue;
        const plan_t *P = &plans[p - 1];
        for (int32_t k = 0; k < P->nabsent; k++) {  /* the columns of other plans: null */
            int32_t c = P->absent[k];
            memset(&out[(int64_t)c * n + good], 0, sizeof *out);
            set_valid(valid + vb * c, good, 1);
            added[c] = 0;
        }
        ok[i] = 1;
        if (which) {
            which[good] = (uint8_t)(p - 1);
            doubt[good] = more;
        }
        for (int32_t c = 0; c < ncol; c++)
            bytes[c] += added[c];
        good++;
    }
    free(sp);
    return good;
}

/* Whether data[0:n] is valid UTF-8 (as Python's strict decoder has it: no overlong forms, no
 * surrogates, nothing past U+10FFFF), 16 bytes of ASCII other than NUL at a time where SSE2 is;
 * *nul: whether it holds a NUL byte (a hole in the file: parse.py's _holes). */
static int valid_utf8(const uint8_t *d, int64_t n, int64_t *nul)
{
    int64_t i = 0;
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
#endif
    while (i < n) {
#if defined(__SSE2__)
        while (i + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(d + i));
            if (_mm_movemask_epi8(_mm_or_si128(v, _mm_cmpeq_epi8(v, zero))))
                break;
            i += 16;
        }
        if (i >= n)
            break;
#endif
        uint8_t c = d[i];
        if (c < 0x80) {
            *nul |= c == 0;
            i++;
            continue;
        }
        int64_t more;
        uint8_t lo = 0x80, hi = 0xBF;  /* the bounds of the byte after the first */
        if (c >= 0xC2 && c <= 0xDF)
            more = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else
            return 0;
        if (i + more >= n || d[i + 1] < lo || d[i + 1] > hi)
            return 0;
        for (int64_t k = 2; k <= more; k++)
            if (d[i + k] < 0x80 || d[i + k] > 0xBF)
                return 0;
        i += more + 1;
    }
    return 1;
}

/* The lines of data[0:n] (cut at "\n", which they do not keep; a last line without one counts too)
 * as at most cap string views into data (buffer 0) at out: their number, or -1 when data is not
 * valid UTF-8 (Python decodes it then, keeping the bad bytes visible) or holds more lines than cap.
 * A newline is ASCII, so data is valid UTF-8 exactly when each of its lines is. *odd: the number of
 * lines that do not start with a printable ASCII byte other than a space (only such a line can be
 * blank: all white space); *nul: whether data holds a NUL byte. */
int64_t logpipe_lines(const uint8_t *data, int64_t n, view_t *out, int64_t cap, int64_t *odd, int64_t *nul)
{
    *odd = 0;
    *nul = 0;
    if (!valid_utf8(data, n, nul))
        return -1;
    int64_t count = 0, at = 0;
    while (at < n) {
        const uint8_t *nl = memchr(data + at, '\n', (size_t)(n - at));
        int64_t end = nl ? nl - data : n;
        if (count == cap)
            return -1;
        put_view(&out[count++], data, at, end - at, 0, n - at);
        *odd += end == at || data[at] <= ' ' || data[at] > '~';
        at = end + 1;
    }
    return count;
}

/* d[0:len] = s[0:len] for a long text (len > 12) as fixed-size moves that overlap, none outside either
 * range (a call of memcpy for each of a column's ~25k texts of 13-64 bytes cost more than the copy). */
static void copy_text(uint8_t *d, const uint8_t *s, int32_t len)
{
    uint8_t a[16], b[16], c[16], e[16];
    if (len <= 16) {
        memcpy(a, s, 8);
        memcpy(b, s + len - 8, 8);
        memcpy(d, a, 8);
        memcpy(d + len - 8, b, 8);
    } else if (len <= 32) {
        memcpy(a, s, 16);
        memcpy(b, s + len - 16, 16);
        memcpy(d, a, 16);
        memcpy(d + len - 16, b, 16);
    } else if (len <= 64) {
        memcpy(a, s, 16);
        memcpy(b, s + 16, 16);
        memcpy(c, s + len - 32, 16);
        memcpy(e, s + len - 16, 16);
        memcpy(d, a, 16);
        memcpy(d + 16, b, 16);
        memcpy(d + len - 32, c, 16);
        memcpy(d + len - 16, e, 16);
    } else {
        memcpy(d, s, (size_t)len);
    }
}

/* Copy the long texts of n views (into bufs) to dest, in order, and point the views there (buffer 0). */
void logpipe_compact(view_t *views, int64_t n, const uint8_t *const *bufs, uint8_t *dest)
{
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        view_t *v = &views[i];
        if (v->len > 12) {
            copy_text(dest + at, bufs[v->u.ref.buffer] + v->u.ref.offset, v->len);
            v->u.ref.buffer = 0;
            v->u.ref.offset = (int32_t)at;
            at += v->len;
        }
    }
}

/* The number of bytes c in p[0:n]: in blocks of 16 byte counters, which compilers vectorize (~8x
 * CPython's bytes.count for the parent's line counting of a file's ranges). */
int64_t logpipe_count(const uint8_t *p, int64_t n, uint8_t c)
{
    int64_t total = 0;
    while (n > 0) {
        int64_t m = n < 255 * 16 ? n : 255 * 16, i = 0;  /* no counter passes 255 */
        uint8_t acc[16] = {0};
        for (; i + 16 <= m; i += 16)
            for (int k = 0; k < 16; k++)
                acc[k] += p[i + k] == c;
        for (int k = 0; k < 16; k++)
            total += acc[k];
        for (; i < m; i++)
            total += p[i] == c;
        p += m;
        n -= m;
    }
    return total;
}

/* ---- JSON lines (logpipe/jsonout.py) ------------------------------------------------------------
 * One JSON object per row, assembled from its columns. A column's kind says how its values are
 * written (null is `null` in each but JSON_FRAGMENT):
 *   JSON_FRAGMENT: a string array of JSON text already (rendered by Arrow: floats, lists, …), no nulls;
 *   JSON_STRING: text to quote and escape, exactly as Python's json module does with ensure_ascii
 *     (\" \\ \b \f \n \r \t, \u00XX for other controls and DEL, \uXXXX and surrogate pairs beyond
 *     ASCII, lowercase hex);
 *   JSON_INT32, JSON_INT64: the numbers, in decimal (as Arrow's cast to string writes them);
 *   JSON_TIME_Z, JSON_TIME: microseconds since 1970 as "YYYY-MM-DDTHH:MM:SS.ffffff", the fraction cut
 *     to 3 digits when its last 3 are zeros, with a Z for a column with a time zone (in UTC): the text
 *     of jsonout.iso_array. Years 1 to 9999 only;
 *   JSON_STRINGS: a list of strings, as ["a","b"] (items escaped as JSON_STRING's, a null item null):
 *     offsets[c] are the lists' offsets into its items, a string array of validity item_validity[c],
 *     offsets item_offsets[c], text item_data[c], its first item at item_first[c].
 * For the numbers and times data[c] is the values' buffer and offsets[c] is not read. Rows start to
 * start + n of the columns (each from its row first[c]) are written, row i after keys[i] … and
 * ending with `end`; their bounds go to line_offs. Returns the bytes written; -1 when a string is not
 * valid UTF-8 or a time is out of those years (Python then renders them itself); -2, writing
 * nothing, when the most they can take (rows_bound: 6 bytes per byte of text, 30 a number or a
 * time), set in *need, is over cap, the bytes at out. */

enum { JSON_FRAGMENT = 0, JSON_STRING = 1, JSON_INT32 = 2, JSON_INT64 = 3, JSON_TIME_Z = 4, JSON_TIME = 5,
       JSON_STRINGS = 6 };

static const char HEX[] = "0123456789abcdef";

static uint8_t *put_u(uint8_t *o, uint32_t cp)
{
    o[0] = '\\'; o[1] = 'u';
    o[2] = (uint8_t)HEX[(cp >> 12) & 15]; o[3] = (uint8_t)HEX[(cp >> 8) & 15];
    o[4] = (uint8_t)HEX[(cp >> 4) & 15]; o[5] = (uint8_t)HEX[cp & 15];
    return o + 6;
}

static uint8_t *put_json_string(uint8_t *o, const uint8_t *s, int64_t len)
{
    *o++ = '"';
    int64_t i = 0;
    while (i < len) {
#if defined(__SSE2__)
        /* 16 bytes at a time while none needs an escape (a control, '"', '\\', DEL, or past ASCII:
         * the signed compare below 0x20 takes bytes from 0x80 too) */
        const __m128i low = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'), slash = _mm_set1_epi8('\\'),
                      del = _mm_set1_epi8(0x7f);
        for (; i + 16 <= len; i += 16, o += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(x, low), _mm_cmpeq_epi8(x, quote)),
                                       _mm_or_si128(_mm_cmpeq_epi8(x, slash), _mm_cmpeq_epi8(x, del)));
            if (_mm_movemask_epi8(bad))
                break;
            _mm_storeu_si128((__m128i *)o, x);
        }
        if (i >= len)
            break;
#endif
        uint8_t c = s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            *o++ = c;
            i++;
            continue;
        }
        if (c < 0x80) {
            *o++ = '\\';
            switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default: o = put_u(o - 1, c);
            }
            i++;
            continue;
        }
        uint32_t cp;
        int n;
        if (c >= 0xc2 && c <= 0xdf) { cp = c & 0x1f; n = 1; }
        else if (c >= 0xe0 && c <= 0xef) { cp = c & 0x0f; n = 2; }
        else if (c >= 0xf0 && c <= 0xf4) { cp = c & 0x07; n = 3; }
        else return NULL;
        for (int k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
                return NULL;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return NULL;  /* overlong, out of range, or a surrogate: not valid UTF-8 */
        if (cp < 0x10000) {
            o = put_u(o, cp);
        } else {
            cp -= 0x10000;
            o = put_u(o, 0xd800 | ((cp >> 10) & 0x3ff));
            o = put_u(o, 0xdc00 | (cp & 0x3ff));
        }
        i += n + 1;
    }
    *o++ = '"';
    return o;
}

static int valid_at(const uint8_t *validity, int64_t i)
{
    return validity == NULL || (validity[i >> 3] >> (i & 7)) & 1;
}

/* v in decimal at o; returns the end. */
static uint8_t *put_int(uint8_t *o, int64_t v)
{
    uint8_t tmp[20];
    int k = 0;
    uint64_t u = v < 0 ? 0u - (uint64_t)v : (uint64_t)v;
    do {
        tmp[k++] = (uint8_t)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *o++ = '-';
    while (k)
        *o++ = tmp[--k];
    return o;
}

static uint8_t *put_digits(uint8_t *o, int64_t v, int width)
{
    for (int k = width - 1; k >= 0; k--) {
        o[k] = (uint8_t)('0' + v % 10);
        v /= 10;
    }
    return o + width;
}

/* The proleptic Gregorian date of `days` since 1970-01-01 (the inverse of days_from_civil). */
static void civil_from_days(int64_t days, int64_t *y, int64_t *m, int64_t *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097, doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

/* Microseconds since 1970 as a quoted ISO-8601 time (JSON_TIME_Z, JSON_TIME); NULL out of years 1 to 9999. */
static uint8_t *put_time(uint8_t *o, int64_t us, int zulu)
{
    const int64_t day_us = 86400LL * 1000000;
    if (us < -62135596800LL * 1000000 || us > 253402300799LL * 1000000 + 999999)
        return NULL;
    int64_t days = us / day_us, rest = us % day_us, y, m, d;
    if (rest < 0) {
        rest += day_us;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    int64_t secs = rest / 1000000, frac = rest % 1000000;
    *o++ = '"';
    o = put_digits(o, y, 4);
    *o++ = '-';
    o = put_digits(o, m, 2);
    *o++ = '-';
    o = put_digits(o, d, 2);
    *o++ = 'T';
    o = put_digits(o, secs / 3600, 2);
    *o++ = ':';
    o = put_digits(o, secs / 60 % 60, 2);
    *o++ = ':';
    o = put_digits(o, secs % 60, 2);
    *o++ = '.';
    o = frac % 1000 ? put_digits(o, frac, 6) : put_digits(o, frac / 1000, 3);
    if (zulu)
        *o++ = 'Z';
    *o++ = '"';
    return o;
}

/* The most bytes rows [start, start + n) of the columns can take (logpipe_json_lines,
 * logpipe_delimited_lines), from their offsets: per_row for each row (keys, delimiters, the end),
 * a text `grow` times its bytes and `grow` more (escapes or quotes; a fragment only its bytes unless
 * fragments_grow), a list the same for each item and one more, a null, a number or a time 30. */
static int64_t rows_bound(int64_t n, int32_t ncols, const int32_t *kinds, const int32_t *const *offsets,
                          const int64_t *first, int64_t start, const int32_t *const *item_offsets,
                          const int64_t *item_first, int64_t per_row, int64_t grow, int fragments_grow)
{
    int64_t need = n * per_row;
    for (int32_t c = 0; c < ncols; c++) {
        int64_t a = first[c] + start;
        if (kinds[c] <= JSON_STRING) {
            int64_t texts = offsets[c][a + n] - offsets[c][a];
            need += kinds[c] == JSON_STRING || fragments_grow ? grow * texts + grow * n : texts;
        } else if (kinds[c] == JSON_STRINGS) {
            int64_t lo = item_first[c] + offsets[c][a], hi = item_first[c] + offsets[c][a + n];
            need += grow * n + grow * ((int64_t)item_offsets[c][hi] - item_offsets[c][lo]) + (grow + 1) * (hi - lo);
        } else {
            need += 30 * n;
        }
    }
    return need;
}

int64_t logpipe_json_lines(int64_t n, int32_t ncols, const int32_t *kinds, const uint8_t *const *validity,
                           const int32_t *const *offsets, const uint8_t *const *data, const int64_t *first,
                           const uint8_t *keys, const int32_t *key_offs, const uint8_t *end, int32_t end_len,
                           uint8_t *out, int32_t *line_offs, const uint8_t *const *item_validity,
                           const int32_t *const *item_offsets, const uint8_t *const *item_data, const int64_t *item_first,
                           int64_t start, int64_t cap, int64_t *need)
{
    *need = rows_bound(n, ncols, kinds, offsets, first, start, item_offsets, item_first,
                       (int64_t)key_offs[ncols] + end_len, 6, 0);
    if (*need > cap)
        return -2;
    uint8_t *o = out;
    enum { AHEAD = 8 };  /* rows: the texts of a row that far ahead are asked for before this one's are read */
    for (int64_t i = 0; i < n; i++) {
        line_offs[i] = (int32_t)(o - out);
        if (i + AHEAD < n)
            for (int32_t c = 0; c < ncols; c++)
                if (kinds[c] <= JSON_STRING)  /* (a list's items: not asked for) */
                    __builtin_prefetch(data[c] + offsets[c][first[c] + start + i + AHEAD]);
        for (int32_t c = 0; c < ncols; c++) {
            memcpy(o, keys + key_offs[c], (size_t)(key_offs[c + 1] - key_offs[c]));
            o += key_offs[c + 1] - key_offs[c];
            int64_t r = first[c] + start + i;
            int32_t kind = kinds[c];
            if (kind == JSON_FRAGMENT) {
                const uint8_t *text = data[c] + offsets[c][r];
                int64_t len = offsets[c][r + 1] - offsets[c][r];
                memcpy(o, text, (size_t)len);
                o += len;
            } else if (!valid_at(validity[c], r)) {
                memcpy(o, "null", 4);
                o += 4;
            } else if (kind == JSON_STRING) {
                const uint8_t *text = data[c] + offsets[c][r];
                if ((o = put_json_string(o, text, offsets[c][r + 1] - offsets[c][r])) == NULL)
                    return -1;
            } else if (kind == JSON_STRINGS) {
                *o++ = '[';
                for (int32_t k = offsets[c][r]; k < offsets[c][r + 1]; k++) {
                    int64_t q = item_first[c] + k;
                    if (k > offsets[c][r])
                        *o++ = ',';
                    if (!valid_at(item_validity[c], q)) {
                        memcpy(o, "null", 4);
                        o += 4;
                    } else if ((o = put_json_string(o, item_data[c] + item_offsets[c][q],
                                                    item_offsets[c][q + 1] - item_offsets[c][q])) == NULL) {
                        return -1;
                    }
                }
                *o++ = ']';
            } else if (kind == JSON_INT32) {
                o = put_int(o, ((const int32_t *)data[c])[r]);
            } else if (kind == JSON_INT64) {
                o = put_int(o, ((const int64_t *)data[c])[r]);
            } else if ((o = put_time(o, ((const int64_t *)data[c])[r], kind == JSON_TIME_Z)) == NULL) {
                return -1;
            }
        }
        memcpy(o, end, (size_t)end_len);
        o += end_len;
    }
    line_offs[n] = (int32_t)(o - out);
    return o - out;
}

/* ---- delimited rows (logpipe/render.py: csv, tsv) -----------------------------------------------
 * Rows as Python's csv module writes them (its default dialect, with delimiter `delim` and "\n" at
 * the end of a row): a field is quoted, its quotes doubled, when it holds a byte quote[b] marks
 * (render.py asks the running csv module which: the delimiter, the quote, "\n"); a null is empty.
 * Kinds and buffers as logpipe_json_lines reads them: JSON_FRAGMENT and JSON_STRING are text (the
 * fragments are Python's text of the other kinds), the ints are written in decimal, the times as
 * YYYY-MM-DDTHH:MM:SS.fff[fff] (and Z), a list's items joined by ',' (a null item empty) as one field.
 * Returns the bytes written; -1 for a time out of years 1 to 9999; -2, writing nothing, when the
 * most the rows can take (*need) is over cap. */

static int quoted_text(const uint8_t *s, int64_t len, const uint8_t *quote)
{
    for (int64_t i = 0; i < len; i++)
        if (quote[s[i]])
            return 1;
    return 0;
}

static uint8_t *put_field(uint8_t *o, const uint8_t *s, int64_t len, int quoted)
{
    if (!quoted) {
        memcpy(o, s, (size_t)len);
        return o + len;
    }
    for (int64_t i = 0; i < len; i++) {
        if (s[i] == '"')
            *o++ = '"';
        *o++ = s[i];
    }
    return o;
}

int64_t logpipe_delimited_lines(int64_t n, int32_t ncols, const int32_t *kinds, const uint8_t *const *validity,
                                const int32_t *const *offsets, const uint8_t *const *data, const int64_t *first,
                                uint8_t delim, const uint8_t *quote, uint8_t *out, int32_t *line_offs,
                                const uint8_t *const *item_validity, const int32_t *const *item_offsets,
                                const uint8_t *const *item_data, const int64_t *item_first,
                                int64_t start, int64_t cap, int64_t *need)
{
    /* every byte doubled and two quotes a field, a delimiter each and the newline */
    int64_t most = rows_bound(n, ncols, kinds, offsets, first, start, item_offsets, item_first, (int64_t)ncols + 1, 2, 1);
    *need = most;
    if (most > cap)
        return -2;
    uint8_t *o = out;
    for (int64_t i = 0; i < n; i++) {
        line_offs[i] = (int32_t)(o - out);
        for (int32_t c = 0; c < ncols; c++) {
            if (c)
                *o++ = delim;
            int64_t r = first[c] + start + i;
            int32_t kind = kinds[c];
            if (!valid_at(validity[c], r))
                continue;
            if (kind <= JSON_STRING) {
                const uint8_t *text = data[c] + offsets[c][r];
                int64_t len = offsets[c][r + 1] - offsets[c][r];
                int q = quoted_text(text, len, quote);
                if (q)
                    *o++ = '"';
                o = put_field(o, text, len, q);
                if (q)
                    *o++ = '"';
            } else if (kind == JSON_STRINGS) {
                int32_t lo = offsets[c][r], hi = offsets[c][r + 1];
                int q = hi - lo > 1 && quote[','];
                for (int32_t k = lo; k < hi && !q; k++) {
                    int64_t x = item_first[c] + k;
                    q = valid_at(item_validity[c], x)
                        && quoted_text(item_data[c] + item_offsets[c][x], item_offsets[c][x + 1] - item_offsets[c][x], quote);
                }
                if (q)
                    *o++ = '"';
                for (int32_t k = lo; k < hi; k++) {
                    int64_t x = item_first[c] + k;
                    if (k > lo)
                        *o++ = ',';
                    if (valid_at(item_validity[c], x))
                        o = put_field(o, item_data[c] + item_offsets[c][x], item_offsets[c][x + 1] - item_offsets[c][x], q);
                }
                if (q)
                    *o++ = '"';
            } else if (kind == JSON_INT32) {
                o = put_int(o, ((const int32_t *)data[c])[r]);
            } else if (kind == JSON_INT64) {
                o = put_int(o, ((const int64_t *)data[c])[r]);
            } else {
                uint8_t *t = put_time(o, ((const int64_t *)data[c])[r], kind == JSON_TIME_Z);
                if (t == NULL)
                    return -1;
                memmove(o, o + 1, (size_t)(t - o - 2));  /* its text without the JSON quotes */
                o = t - 2;
            }
        }
        *o++ = '\n';
    }
    line_offs[n] = (int32_t)(o - out);
    return o - out;
}

/* ---- flat JSON objects (logpipe/jsonlog.py) ------------------------------------------------------
 * Istio's JSON encoding is one flat object per line. For each line (offs/data as for logpipe_cut)
 * this reads the object and writes, for each of the nknown first keys, the value's text as a string
 * view (a string's bytes between its quotes; a number, true or false as written) to
 * out[k * n + i] and present[k * n + i] = 0 (absent), 1 (null), 2 (a value) or 3 (a string "-" or
 * "": a value, which the record's rule nulls in most columns, so that jsonlog.py need not look at it
 * again), adding texts over 12 bytes to bytes[k]. Keys [nknown, nkeys) stop the line; other keys are
 * skipped.
 *
 * It reads only what it can give exactly as Python's json.loads and jsonlog._json_text would: a line
 * gets ok = 0, and Python reads it, when it is not one object of scalar values with JSON's
 * whitespace around tokens and nothing after it, when a key or string holds a backslash (escapes) or
 * a control character, when a number is not a plain integer (-?(0|[1-9][0-9]*), not -0, at most 18
 * digits: str(int) of it is its text), when a known key comes twice, or when a stop key appears. Every read stays in
 * [offs[i], offs[i + 1]). Returns the number of lines read. */

static int64_t skip_ws(const uint8_t *d, int64_t at, int64_t b)
{
    while (at < b && (d[at] == ' ' || d[at] == '\t' || d[at] == '\n' || d[at] == '\r'))
        at++;
    return at;
}

/* The end of a string whose opening quote is at d[at - 1], at its closing quote; -1 if none or if it
 * holds a backslash or a control character. */
static int64_t string_end(const uint8_t *d, int64_t at, int64_t b)
{
#if defined(__SSE2__)
    /* 16 bytes at a time: the first quote, backslash or control byte (below 0x20, unsigned) */
    const __m128i quote = _mm_set1_epi8('"'), slash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    for (; at + 16 <= b; at += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(d + at));
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, slash)))
                     | (~(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(x, space), x)) & 0xffffu);
        if (m) {
            at += __builtin_ctz(m);
            return d[at] == '"' ? at : -1;
        }
    }
#endif
    for (; at < b; at++) {
        if (d[at] == '"')
            return at;
        if (d[at] == '\\' || d[at] < 0x20)
            return -1;
    }
    return -1;
}

static int find_key(const uint8_t *d, int64_t s, int64_t len, int32_t nkeys, const uint8_t *keys,
                    const int32_t *key_off, int32_t guess)
{
    if (guess >= 0 && guess < nkeys && key_off[guess + 1] - key_off[guess] == len
        && memcmp(keys + key_off[guess], d + s, (size_t)len) == 0)
        return guess;
    for (int32_t k = 0; k < nkeys; k++)
        if (key_off[k + 1] - key_off[k] == len && memcmp(keys + key_off[k], d + s, (size_t)len) == 0)
            return k;
    return -1;
}

int64_t logpipe_json_flat(const uint8_t *data, const int64_t *offs, int64_t n,
                          int32_t nkeys, int32_t nknown, const uint8_t *keys, const int32_t *key_off,
                          view_t *out, uint8_t *present, uint8_t *ok, int64_t *bytes)
{
    int32_t next_key[nkeys + 1];  /* the key that followed each key last time: lines repeat their order */
    int64_t vs[nknown > 0 ? nknown : 1], ve[nknown > 0 ? nknown : 1];
    int64_t good = 0;
    for (int32_t k = 0; k <= nkeys; k++)
        next_key[k] = k < nkeys ? k + 1 : 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t a = offs[i], b = offs[i + 1];
        int64_t at = skip_ws(data, a, b);
        int32_t prev = nkeys, fits = at < b && data[at] == '{';
        for (int32_t k = 0; k < nknown; k++)
            present[(int64_t)k * n + i] = 0;
        at = skip_ws(data, at + 1, b);
        if (fits && at < b && data[at] == '}') {
            at++;
        } else {
            while (fits) {
                if (at >= b || data[at] != '"') { fits = 0; break; }
                int64_t ks = at + 1, ke = string_end(data, ks, b);
                if (ke < 0) { fits = 0; break; }
                int32_t key = find_key(data, ks, ke - ks, nkeys, keys, key_off, next_key[prev]);
                if (key >= 0) {
                    next_key[prev] = key;
                    prev = key;
                }
                at = skip_ws(data, ke + 1, b);
                if (at >= b || data[at] != ':' || key >= nknown) { fits = 0; break; }  /* key >= nknown: a stop key */
                at = skip_ws(data, at + 1, b);
                if (at >= b) { fits = 0; break; }
                int64_t s = at, e;
                uint8_t kind = 2;
                uint8_t c = data[at];
                if (c == '"') {
                    s = at + 1;
                    e = string_end(data, s, b);
                    if (e < 0) { fits = 0; break; }
                    at = e + 1;
                    if (e == s || (e == s + 1 && data[s] == '-'))
                        kind = 3;
                } else if (c == '-' || (c >= '0' && c <= '9')) {
                    int64_t d = at + (c == '-');
                    if (d >= b || data[d] < '0' || data[d] > '9') { fits = 0; break; }
                    e = d + 1;
                    if (data[d] != '0')
                        while (e < b && data[e] >= '0' && data[e] <= '9')
                            e++;
                    else if (c == '-') { fits = 0; break; }  /* -0: json.loads gives 0 */
                    if (e - d > 18 || (e < b && (data[e] == '.' || data[e] == 'e' || data[e] == 'E'
                                                 || (data[e] >= '0' && data[e] <= '9')))) {
                        fits = 0;
                        break;
                    }
                    at = e;
                } else if (b - at >= 4 && memcmp(data + at, "true", 4) == 0) {
                    e = at + 4; at = e;
                } else if (b - at >= 5 && memcmp(data + at, "false", 5) == 0) {
                    e = at + 5; at = e;
                } else if (b - at >= 4 && memcmp(data + at, "null", 4) == 0) {
                    e = s; at += 4; kind = 1;
                } else {
                    fits = 0;  /* an object, an array, NaN, Infinity or not JSON */
                    break;
                }
                if (key >= 0) {
                    uint8_t *p = &present[(int64_t)key * n + i];
                    if (*p) { fits = 0; break; }  /* twice: json.loads keeps the last */
                    *p = kind;
                    vs[key] = s;
                    ve[key] = e;
                }
                at = skip_ws(data, at, b);
                if (at < b && data[at] == ',') {
                    at = skip_ws(data, at + 1, b);
                    continue;
                }
                if (at < b && data[at] == '}') {
                    at++;
                    break;
                }
                fits = 0;
            }
        }
        fits = fits && skip_ws(data, at, b) == b;
        for (int32_t k = 0; k < nknown; k++) {
            view_t *v = &out[(int64_t)k * n + i];
            if (fits && present[(int64_t)k * n + i] >= 2) {
                put_view(v, data, vs[k], ve[k] - vs[k], 0, offs[n] - vs[k]);
                if (ve[k] - vs[k] > 12)
                    bytes[k] += ve[k] - vs[k];
            } else {
                memset(v, 0, sizeof *v);
                if (!fits)
                    present[(int64_t)k * n + i] = 0;
            }
        }
        ok[i] = (uint8_t)fits;
        good += fits;
    }
    return good;
}

/* ---- dictionary codes (splitplan.py: a token's regex runs once per distinct text) ----------------
 * For n string views (into bufs, or inline; validity NULL or a bitmap, a null being a text of its
 * own), codes[i] = the number of the first row's text equal to row i's, counting distinct texts in
 * the order they first appear; firsts[k] = the row where text k first appears. table holds cap
 * int32 slots, cap a power of two of at least 2n. Returns the number of distinct texts, or -1 when
 * probe > 0 and the first probe rows hold over probe / ratio distinct texts (texts that hardly
 * repeat: reading each once would not pay), without reading further.
 *
 * A view's first 8 bytes are its length and, for a text of over 12 bytes, its first 4 bytes; a text
 * of at most 12 bytes is all in the view. So a short text is hashed and compared as two words (masked
 * to its length: the bytes after it are not relied on), and a long one is compared in full only
 * when its length and first bytes are the same. */
static const uint8_t *view_bytes(const view_t *v, const uint8_t *const *bufs)
{
    return v->len <= 12 ? v->u.inline_data : bufs[v->u.ref.buffer] + v->u.ref.offset;
}

/* Whether each of n texts (string views; validity: their validity bitmap, or NULL) is accepted whole
 * by a DFA walked as dfa_run walks a token's (classes cls, table tab, accepting flags acc, ncls
 * classes, sinks from offset first_sink): out[i] 1 or 0, 0 for a null; returns how many are. A regex
 * "^R(?:[^\n]|\n)*$" asks whether a line starts with R (parse.py's kubectl prefixes): a line that
 * cannot start so leaves it after a byte or two. */
int64_t logpipe_match(const view_t *views, const uint8_t *validity, int64_t n, const uint8_t *const *bufs,
                      const uint8_t *cls, const uint16_t *tab, const uint8_t *acc, int32_t ncls, int32_t first_sink,
                      uint8_t *out)
{
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i++) {
        if (validity && !(validity[i >> 3] >> (i & 7) & 1)) {
            out[i] = 0;
            continue;
        }
        out[i] = (uint8_t)dfa_run(view_bytes(&views[i], bufs), views[i].len, cls, tab, acc, ncls, first_sink);
        hits += out[i];
    }
    return hits;
}

/* Each of n texts (string views, as for logpipe_match) cut at its last byte sep: the text before it
 * to head[i], the text after it to last[i] (views into the same buffers, or inline); a text without
 * sep is all head, its last null; a null text gives null to both (valid: head's validity bitmap, then
 * last's). Returns how many were cut. This is what subfields.read_tail's polars reading gives:
 * sep([^sep]*)$, and the text before its match. */
int64_t logpipe_split_last(const view_t *views, const uint8_t *validity, int64_t n, const uint8_t *const *bufs,
                           uint8_t sep, view_t *head, view_t *last, uint8_t *valid)
{
    int64_t cut = 0, vb = (n + 7) / 8;
    memset(valid, 0, (size_t)(2 * vb));
    for (int64_t i = 0; i < n; i++) {
        const view_t *v = &views[i];
        memset(&last[i], 0, sizeof last[i]);
        if (validity && !(validity[i >> 3] >> (i & 7) & 1)) {
            memset(&head[i], 0, sizeof head[i]);
            continue;
        }
        int64_t len = v->len, k = last_at(view_bytes(v, bufs), 0, len, sep);
        valid[i >> 3] |= (uint8_t)(1u << (i & 7));
        if (k < 0) {
            head[i] = *v;
            continue;
        }
        /* a long text: views into its buffer at its offset; a short one: its bytes, from the view */
        int32_t buffer = len > 12 ? v->u.ref.buffer : 0;
        const uint8_t *data = len > 12 ? bufs[buffer] : v->u.inline_data;
        int64_t at = len > 12 ? v->u.ref.offset : 0;
        put_view(&head[i], data, at, k, buffer, len);
        put_view(&last[i], data, at + k + 1, len - k - 1, buffer, len - k - 1);
        valid[vb + (i >> 3)] |= (uint8_t)(1u << (i & 7));
        cut++;
    }
    return cut;
}

static uint64_t mix(uint64_t h, uint64_t x)
{
    h = (h ^ x) * 0xff51afd7ed558ccdULL;
    return h ^ (h >> 32);
}

int64_t logpipe_dict(const view_t *views, const uint8_t *validity, int64_t n, const uint8_t *const *bufs,
                     int32_t *codes, int32_t *firsts, int32_t *table, int64_t cap, int64_t probe, int64_t ratio)
{
    int32_t ndistinct = 0, null_code = -1;
    for (int64_t k = 0; k < cap; k++)
        table[k] = -1;
    for (int64_t i = 0; i < n; i++) {
        if (i == probe && (int64_t)ndistinct * ratio > probe)
            return -1;
        if (validity && !((validity[i >> 3] >> (i & 7)) & 1)) {
            if (null_code < 0) {
                null_code = ndistinct;
                firsts[ndistinct++] = (int32_t)i;
            }
            codes[i] = null_code;
            continue;
        }
        const view_t *v = &views[i];
        int32_t len = v->len;
        uint64_t w0, w1, h;
        memcpy(&w0, v, 8);
        memcpy(&w1, (const uint8_t *)v + 8, 8);
        if (len <= 12) {  /* the length, then its bytes: masked to them */
            w0 &= len >= 4 ? ~(uint64_t)0 : ((uint64_t)1 << (32 + 8 * len)) - 1u;
            w1 &= len >= 12 ? ~(uint64_t)0 : len <= 4 ? 0u : ((uint64_t)1 << (8 * (len - 4))) - 1u;
            h = mix(mix(0x9E3779B97F4A7C15ULL, w0), w1);
        } else {  /* eight bytes at a time, the last eight (overlapping) for the rest */
            const uint8_t *p = bufs[v->u.ref.buffer] + v->u.ref.offset;
            uint64_t x;
            int32_t k = 0;
            h = (uint64_t)len * 0x9E3779B97F4A7C15ULL;
            for (; k + 8 <= len; k += 8) {
                memcpy(&x, p + k, 8);
                h = mix(h, x);
            }
            if (k < len) {
                memcpy(&x, p + len - 8, 8);
                h = mix(h, x);
            }
        }
        h = (h ^ (h >> 29)) * 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 32;
        for (uint64_t slot = h & (uint64_t)(cap - 1);; slot = (slot + 1) & (uint64_t)(cap - 1)) {
            int32_t code = table[slot];
            if (code < 0) {
                table[slot] = ndistinct;
                codes[i] = ndistinct;
                firsts[ndistinct++] = (int32_t)i;
                break;
            }
            const view_t *u = &views[firsts[code]];
            uint64_t u0, u1;
            memcpy(&u0, u, 8);
            if (u->len != len)
                continue;
            if (len <= 12) {
                memcpy(&u1, (const uint8_t *)u + 8, 8);
                u0 &= len >= 4 ? ~(uint64_t)0 : ((uint64_t)1 << (32 + 8 * len)) - 1u;
                u1 &= len >= 12 ? ~(uint64_t)0 : len <= 4 ? 0u : ((uint64_t)1 << (8 * (len - 4))) - 1u;
                if (u0 == w0 && u1 == w1) {
                    codes[i] = code;
                    break;
                }
            } else if (u0 == w0 && memcmp(view_bytes(u, bufs), view_bytes(v, bufs), (size_t)len) == 0) {
                codes[i] = code;
                break;
            }
        }
    }
    return ndistinct;
}
