/* jinja_lex.c - template source to tokens, as Jinja2's lexer makes them under transformers'
 * settings: line breaks normalised to \n and one trailing \n dropped; {{ }}, {% %}, {# #};
 * "-" next to a delimiter strips the white space on that side (Python's notion of white
 * space), "+" keeps it; trim_blocks drops the \n after a block or comment tag;
 * lstrip_blocks drops the spaces and tabs before a block or comment tag that starts its line;
 * {% raw %} ... {% endraw %} is text. Inside tags: names, strings (Python escapes), integers,
 * floats, operators; tag ends only count where brackets balance.
 */
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"
#include "../common/tok/tok_impl.h"

typedef struct {
    jctx *c;
    const char *s;
    size_t n, pos;
    int line;
    jtok *tok;
    int n_tok, cap;
} jlexer;

static jtok *emit(jlexer *x, int type)
{
    if (x->n_tok == x->cap) {
        int cap = x->cap ? x->cap * 2 : 256;
        jtok *t = ja_alloc(x->c, (size_t)cap * sizeof *t);
        if (x->n_tok)
            memcpy(t, x->tok, (size_t)x->n_tok * sizeof *t);
        x->tok = t;
        x->cap = cap;
    }
    jtok *t = &x->tok[x->n_tok++];
    memset(t, 0, sizeof *t);
    t->type = (uint8_t)type;
    t->line = x->line;
    return t;
}

static void count_lines(jlexer *x, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++)
        x->line += x->s[i] == '\n';
}

static int space_at(const char *s, size_t n, size_t i, int *l)
{
    if (i >= n)
        return 0;
    uint32_t cp = tok_utf8_decode(s + i, l);
    return py_isspace(cp);
}

/* end of the white space run starting at I */
static size_t skip_space(const char *s, size_t n, size_t i)
{
    int l;
    while (space_at(s, n, i, &l))
        i += (size_t)l;
    return i;
}

static void emit_text(jlexer *x, const char *p, size_t n)
{
    if (n == 0)
        return;
    jtok *t = emit(x, T_TEXT);
    char *d = ja_alloc(x->c, n + 1);
    memcpy(d, p, n);
    t->s = d;
    t->n = n;
}

/* TEXT[0..n) before a tag with whitespace SIGN: its length once "-" or lstrip_blocks applied */
static size_t strip_text(const char *text, size_t n, char sign, int lstrip, int line_starting)
{
    if (sign == '-') {
        while (n > 0) {
            size_t k = n - 1;
            while (k > 0 && ((unsigned char)text[k] & 0xC0) == 0x80)
                k--;
            int l;
            if (!space_at(text, n, k, &l))
                break;
            n = k;
        }
        return n;
    }
    if (sign == '+' || !lstrip)
        return n;
    size_t l_pos = n;
    while (l_pos > 0 && text[l_pos - 1] != '\n')
        l_pos--;
    if ((l_pos > 0 || line_starting) && l_pos < n && skip_space(text, n, l_pos) == n)
        return l_pos;
    return n;
}

/* {%[-+]?\s*raw\s*(-%}\s*|%}) at I: its end, or 0 */
static size_t raw_begin(const char *s, size_t n, size_t i, const char *word)
{
    if (i + 2 > n || s[i] != '{' || s[i + 1] != '%')
        return 0;
    i += 2;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    i = skip_space(s, n, i);
    size_t w = strlen(word);
    if (i + w > n || memcmp(s + i, word, w))
        return 0;
    i = skip_space(s, n, i + w);
    if (i + 3 <= n && !memcmp(s + i, "-%}", 3))
        return skip_space(s, n, i + 3);
    if (i + 2 <= n && !memcmp(s + i, "%}", 2))
        return i + 2;
    return 0;
}

static const char *const ops[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%",
                                  "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":",
                                  "|", ",", ";"};

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
         : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* a string literal's body [p, p+n) with Python's escapes decoded */
static void decode_string(jlexer *x, jtok *t, const char *p, size_t n)
{
    jbuf b = {0};
    for (size_t i = 0; i < n;) {
        if (p[i] != '\\' || i + 1 >= n) {
            jb_add(x->c, &b, p + i, 1);
            i++;
            continue;
        }
        char e = p[i + 1], out = 0;
        i += 2;
        uint32_t cp = 0;
        int digits = 0;
        switch (e) {
        case '\n': continue;
        case '\\': out = '\\'; break;
        case '\'': out = '\''; break;
        case '"': out = '"'; break;
        case 'a': out = 7; break;
        case 'b': out = 8; break;
        case 'f': out = 12; break;
        case 'n': out = '\n'; break;
        case 'r': out = '\r'; break;
        case 't': out = '\t'; break;
        case 'v': out = 11; break;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (e >= '0' && e <= '7') {
                cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && i < n && p[i] >= '0' && p[i] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(p[i++] - '0');
                digits = -1;
                break;
            }
            jb_add(x->c, &b, p + i - 2, 2); /* an unknown escape stays as it is */
            continue;
        }
        if (digits == 0) {
            jb_add(x->c, &b, &out, 1);
            continue;
        }
        for (int k = 0; k < digits; k++) {
            int h = i < n ? hexval(p[i]) : -1;
            if (h < 0)
                jfail(x->c, JINJA_ESYNTAX, "line %d: truncated \\%c escape in a string", t->line, e);
            cp = cp * 16 + (uint32_t)h;
            i++;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
            jfail(x->c, JINJA_ESYNTAX, "line %d: escape \\%c to an invalid code point", t->line, e);
        char u[4];
        jb_add(x->c, &b, u, (size_t)tok_utf8_encode(cp, u));
    }
    t->s = b.p ? b.p : "";
    t->n = b.n;
}

/* The number at S[I] (digits with _ separators, a fraction, an exponent): an int or float token. */
static void lex_number(jlexer *x, size_t i)
{
    const char *s = x->s;
    size_t n = x->n;
    size_t e = i;
    int is_float = 0;
    while (e < n && ((s[e] >= '0' && s[e] <= '9') || s[e] == '_'))
        e++;
    if (e + 1 < n && s[e] == '.' && s[e + 1] >= '0' && s[e + 1] <= '9') {
        is_float = 1;
        e++;
        while (e < n && ((s[e] >= '0' && s[e] <= '9') || s[e] == '_'))
            e++;
    }
    if (e < n && (s[e] == 'e' || s[e] == 'E')) {
        size_t k = e + 1;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            k++;
        if (k < n && s[k] >= '0' && s[k] <= '9') {
            is_float = 1;
            e = k;
            while (e < n && ((s[e] >= '0' && s[e] <= '9') || s[e] == '_'))
                e++;
        }
    }
    char num[64];
    size_t k = 0;
    for (size_t j = i; j < e && k < sizeof num - 1; j++)
        if (s[j] != '_')
            num[k++] = s[j];
    num[k] = 0;
    jtok *t = emit(x, is_float ? T_FLOAT : T_INT);
    if (is_float)
        t->f = strtod(num, NULL);
    else
        t->i = strtoll(num, NULL, 10);
    x->pos = e;
}

/* The name at S[I] (ASCII letters, digits, _): a name token, its text copied. */
static void lex_name(jlexer *x, size_t i)
{
    const char *s = x->s;
    size_t n = x->n, e = i;
    while (e < n && ((s[e] >= 'a' && s[e] <= 'z') || (s[e] >= 'A' && s[e] <= 'Z') ||
                     (s[e] >= '0' && s[e] <= '9') || s[e] == '_'))
        e++;
    jtok *t = emit(x, T_NAME);
    char *d = ja_alloc(x->c, e - i + 1);
    memcpy(d, s + i, e - i);
    t->s = d;
    t->n = e - i;
    x->pos = e;
}

/* The tokens inside a tag up to its end (END: "}}" or "%}"; "-" before it strips the white
 * space after, "+" with TRIM_NEWLINE keeps the newline that a block end otherwise drops). */
static void lex_tag(jlexer *x, const char *end, int trim_newline)
{
    const char *s = x->s;
    size_t n = x->n;
    char stack[64];
    int depth = 0;
    for (;;) {
        size_t i = x->pos;
        if (i >= n)
            jfail(x->c, JINJA_ESYNTAX, "line %d: unexpected end of template, expected '%s'", x->line, end);
        if (depth == 0) {
            size_t e = 0;
            if (s[i] == '-' && i + 3 <= n && !memcmp(s + i + 1, end, 2))
                e = skip_space(s, n, i + 3);
            else if (s[i] == '+' && trim_newline && i + 3 <= n && !memcmp(s + i + 1, end, 2))
                e = i + 3;
            else if (i + 2 <= n && !memcmp(s + i, end, 2)) {
                e = i + 2;
                if (trim_newline && e < n && s[e] == '\n')
                    e++;
            }
            if (e) {
                emit(x, trim_newline ? T_BLOCK_END : T_VAR_END);
                count_lines(x, i, e);
                x->pos = e;
                return;
            }
        }
        int l;
        if (space_at(s, n, i, &l)) {
            size_t e = skip_space(s, n, i);
            count_lines(x, i, e);
            x->pos = e;
            continue;
        }
        char ch = s[i];
        if (ch >= '0' && ch <= '9') {
            lex_number(x, i);
            continue;
        }
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_') {
            lex_name(x, i);
            continue;
        }
        if (ch == '\'' || ch == '"') {
            size_t e = i + 1;
            while (e < n && s[e] != ch)
                e += s[e] == '\\' ? 2 : 1;
            if (e >= n)
                jfail(x->c, JINJA_ESYNTAX, "line %d: unterminated string", x->line);
            jtok *t = emit(x, T_STRING);
            decode_string(x, t, s + i + 1, e - i - 1);
            count_lines(x, i, e);
            x->pos = e + 1;
            continue;
        }
        const char *op = NULL;
        for (size_t k = 0; k < sizeof ops / sizeof *ops && !op; k++)
            if (i + strlen(ops[k]) <= n && !memcmp(s + i, ops[k], strlen(ops[k])))
                op = ops[k];
        if (!op)
            jfail(x->c, JINJA_ESYNTAX, "line %d: unexpected character '%c'", x->line, ch);
        if (strchr("([{", op[0]) && !op[1]) {
            if (depth == (int)sizeof stack)
                jfail(x->c, JINJA_ESYNTAX, "line %d: brackets nested too deep", x->line);
            stack[depth++] = op[0] == '(' ? ')' : op[0] == '[' ? ']' : '}';
        } else if (strchr(")]}", op[0]) && !op[1]) {
            if (depth == 0 || stack[depth - 1] != op[0])
                jfail(x->c, JINJA_ESYNTAX, "line %d: unexpected '%c'", x->line, op[0]);
            depth--;
        }
        jtok *t = emit(x, T_OP);
        t->s = op;
        t->n = strlen(op);
        x->pos = i + t->n;
    }
}

/* A raw block's body (it begins at S[RAW_END], after "{% raw %}") as text, up to its endraw tag;
 * returns whether the text after it starts a line. */
static int lex_raw(jlexer *x, size_t raw_end)
{
    const char *s = x->s;
    size_t m = x->n;
    /* text up to {%[-+]?\s*endraw\s*(+%}|-%}\s*|%}\n?) */
    size_t e = raw_end, body_end = 0, after = 0;
    for (; e + 1 < m; e++)
        if (s[e] == '{' && s[e + 1] == '%' && (after = raw_begin(s, m, e, "endraw"))) {
            body_end = e;
            break;
        }
    if (!body_end && !after)
        jfail(x->c, JINJA_ESYNTAX, "line %d: missing end of raw directive", x->line);
    char esign = e + 2 < m && (s[e + 2] == '-' || s[e + 2] == '+') ? s[e + 2] : 0;
    size_t close = after; /* "+%}" keeps the newline; "%}" followed by \n drops it */
    if (s[after - 1] == '}' && after < m && s[after] == '\n' && !(after >= 3 && s[after - 3] == '+'))
        close = after + 1;
    count_lines(x, x->pos, raw_end);
    emit_text(x, s + raw_end, strip_text(s + raw_end, body_end - raw_end, esign, 1, 0));
    count_lines(x, raw_end, close);
    x->pos = close;
    return s[close - 1] == '\n';
}

/* Skips a comment tag, "{#" already read, up to its end ("-#}" also takes the white space after,
 * "#}" one newline, "+#}" none). */
static void skip_comment(jlexer *x)
{
    const char *s = x->s;
    size_t m = x->n;
    size_t e = x->pos, end = 0;
    for (; e + 1 < m && !end; e++) {
        if (s[e] == '+' && e + 2 < m && s[e + 1] == '#' && s[e + 2] == '}')
            end = e + 3;
        else if (s[e] == '-' && e + 2 < m && s[e + 1] == '#' && s[e + 2] == '}')
            end = skip_space(s, m, e + 3);
        else if (s[e] == '#' && s[e + 1] == '}')
            end = e + 2 + (e + 2 < m && s[e + 2] == '\n');
    }
    if (!end)
        jfail(x->c, JINJA_ESYNTAX, "line %d: missing end of comment tag", x->line);
    count_lines(x, x->pos, end);
    x->pos = end;
}

jtok *jlex(jctx *c, const char *src, size_t n, int *n_tok)
{
    /* line breaks to \n, then one trailing \n dropped (keep_trailing_newline=False) */
    char *s = ja_alloc(c, n + 1);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            s[m++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n')
                i++;
        } else
            s[m++] = src[i];
    }
    if (m > 0 && s[m - 1] == '\n')
        m--;
    s[m] = 0;
    jlexer x = {.c = c, .s = s, .n = m, .line = 1};
    int line_starting = 1;
    while (x.pos < m) {
        size_t t = x.pos;
        int kind = 0; /* '{' variable, '%' block, '#' comment */
        size_t raw_end = 0;
        for (; t + 1 < m; t++)
            if (s[t] == '{' && (s[t + 1] == '{' || s[t + 1] == '%' || s[t + 1] == '#')) {
                kind = s[t + 1];
                raw_end = kind == '%' ? raw_begin(s, m, t, "raw") : 0;
                break;
            }
        if (!kind) {
            emit_text(&x, s + x.pos, m - x.pos);
            break;
        }
        char sign = t + 2 < m && (s[t + 2] == '-' || s[t + 2] == '+') ? s[t + 2] : 0;
        size_t text_n = strip_text(s + x.pos, t - x.pos, sign, kind != '{', line_starting);
        emit_text(&x, s + x.pos, text_n);
        count_lines(&x, x.pos, t);
        x.pos = t + 2 + (sign != 0);
        line_starting = 0;
        if (raw_end) {
            line_starting = lex_raw(&x, raw_end);
            continue;
        }
        if (kind == '#') {
            skip_comment(&x);
        } else {
            emit(&x, kind == '{' ? T_VAR_BEGIN : T_BLOCK_BEGIN);
            lex_tag(&x, kind == '{' ? "}}" : "%}", kind == '%');
        }
        line_starting = s[x.pos - 1] == '\n';
    }
    emit(&x, T_EOF);
    *n_tok = x.n_tok;
    return x.tok;
}
