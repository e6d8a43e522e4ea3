/*
 * gw_config_doc.c - the configuration reference, generated from the tables
 * the parser uses (gw_config_table.h): the commented sample file
 * (conf/pollgate.ini), the README's reference (markdown) and
 * pollgate.ini(5) (roff). `make config-doc` rewrites the shipped copies;
 * test_gw_config fails while they differ from what this prints.
 */
#include "gw_config.h"
#include "gw_config_table.h"

#include <stdio.h>
#include <string.h>

#define DOC_LINE 512 /* one generated line, at most */

/* Shown as is (preformatted) in every format. */
static const char *const syntax_text[] = {
    "[section]            sections: [gateway], [session], [upstream] and one",
    "                     [route NAME] per route (NAME is free text)",
    "key = value          surrounding spaces are ignored, no quoting",
    "; comment            a whole-line comment starts with ';' or '#'",
    "key = value ; note   a comment after a value needs a space before ';'",
    "                     ('#' after a value is an error, not a comment)",
    "",
    "A key may appear once per section. A key = value line may be at most",
    "198 characters long, not counting a comment after it; a list (origins,",
    "forward_headers) can go on over indented lines instead:",
    "    origins = https://a.example.com,",
    "              https://b.example.com",
    "",
    "Units",
    "  durations   500ms, 25s, 5m, 1h   (a bare number is only allowed for 0)",
    "  sizes       512B, 64KiB, 1MiB, 1GiB   (a bare number is bytes)",
    "  booleans    on/off, yes/no, true/false, 1/0",
};

static const char intro_text[] =
    "pollgate lets browsers that cannot use WebSocket reach a WebSocket "
    "server: each browser session (HTTP long-poll, Server-Sent Events or "
    "SockJS) gets one WebSocket connection to the upstream server named by "
    "its route. Every key is listed below with what it does, its unit, the "
    "range it accepts and its default; a key left out takes its default. An "
    "unknown section or key, a bad value or a value out of range stops "
    "pollgate with FILE:LINE of each problem.";

_Static_assert(MAX_LINE == 198, "syntax_text states the line limit");

/* "Duration, 0 or 1s-8760h": what a value of d looks like. */
static void doc_type(const struct directive *d, char *out, size_t n)
{
    static const char *const names[] = {
        [T_DURATION] = "Duration", [T_SIZE] = "Size", [T_UINT] = "Count",
        [T_BOOL] = "Boolean", [T_ENUM] = "One of", [T_STRING] = "Text",
        [T_FILE] = "File", [T_DIR] = "Directory", [T_LISTEN] = "HOST:PORT list", [T_ADDR] = "HOST:PORT",
        [T_LIST] = "Comma-separated list", [T_URL] = "ws:// or wss:// URL",
    };
    int k = snprintf(out, n, "%s", d->what ? d->what : names[d->type]);
    if (d->type == T_DURATION || d->type == T_SIZE || d->type == T_UINT ||
        d->type == T_LISTEN || d->type == T_ADDR) {
        char lo[32], hi[32];
        gw_config_fmt_number(d->type, d->min, lo, sizeof lo);
        gw_config_fmt_number(d->type, d->max, hi, sizeof hi);
        /* D_ZERO_OK on an address means "may be empty": port 0 is
         * refused (libevent cannot bind it by number) */
        bool addr = d->type == T_LISTEN || d->type == T_ADDR;
        snprintf(out + k, n - (size_t)k, ", %s%s%s-%s%s", addr ? "port " : "",
                 d->flags & D_ZERO_OK && !addr ? "0 or " : "", lo, hi,
                 d->flags & D_ZERO_OK && addr ? ", or empty" : "");
    }
    for (int i = 0; d->values && d->values[i] && (size_t)k < n; i++)
        k += snprintf(out + k, n - (size_t)k, "%s %s", i ? "," : ":",
                      d->values[i]);
}

static const char *doc_default(const struct directive *d)
{
    return !d->def ? "required" : *d->def ? d->def : "empty";
}

/* Greedy word wrap of text into lines of at most width, each printed as
 * prefix + line. */
static void doc_wrap(FILE *out, const char *prefix, const char *text, int width)
{
    while (*text) {
        int len = (int)strlen(text), cut = len;
        if (len > width) {
            for (cut = width; cut > 0 && text[cut] != ' '; cut--)
                ;
            if (cut == 0)
                cut = (int)strcspn(text, " ");
        }
        fprintf(out, "%s%.*s\n", prefix, cut, text);
        text += cut;
        while (*text == ' ')
            text++;
    }
}

/* d's help, and for a key read once at start, that a reload keeps it. */
static const char *doc_help(const struct directive *d)
{
    static char buf[4096];
    if (!(d->flags & D_RESTART))
        return d->help;
    snprintf(buf, sizeof buf, "%s Changing it needs a restart: a reload "
             "(SIGHUP) keeps the running value and logs a warning.", d->help);
    return buf;
}

static void doc_ini_key(FILE *out, const struct directive *d)
{
    char type[DOC_LINE];
    doc_type(d, type, sizeof type);
    fputs("\n", out);
    doc_wrap(out, "; ", doc_help(d), 74);
    fprintf(out, "; %s.  %s%s\n", type, d->def ? "Default: " : "",
            d->def ? doc_default(d) : "Required.");
    const char *v = d->example ? d->example : d->def;
    fprintf(out, "%s =%s%s\n", d->key, *v ? " " : "", v);
}

static void doc_ini(FILE *out)
{
    fputs("; pollgate configuration file\n; ===========================\n;\n"
          "; Generated from the tables in gateway/gw_config.c by\n"
          "; pollgate --config-doc=ini: edit those, not this file.\n;\n", out);
    doc_wrap(out, "; ", intro_text, 74);
    fputs(";\n; Syntax\n", out);
    for (size_t i = 0; i < ARRAY_LEN(syntax_text); i++)
        fprintf(out, ";%s%s\n", *syntax_text[i] ? "   " : "", syntax_text[i]);
    for (int s = 0; s < S_COUNT; s++) {
        fputs("\n", out);
        if (s == S_ROUTE) {
            doc_wrap(out, "; ", gw_config_sections[s].help, 74);
            fputs("[route chat]\n", out);
        } else {
            fprintf(out, "[%s]\n", gw_config_sections[s].name);
            doc_wrap(out, "; ", gw_config_sections[s].help, 74);
        }
        for (size_t i = 0; i < gw_config_sections[s].n; i++)
            doc_ini_key(out, &gw_config_sections[s].keys[i]);
    }
}

static void doc_markdown(FILE *out)
{
    fputs("```\n", out); /* the README says what intro_text says */
    for (size_t i = 0; i < ARRAY_LEN(syntax_text); i++)
        fprintf(out, "%s\n", syntax_text[i]);
    fputs("```\n", out);
    for (int s = 0; s < S_COUNT; s++) {
        fprintf(out, "\n#### [%s%s]\n\n%s\n\n", gw_config_sections[s].name,
                s == S_ROUTE ? " NAME" : "", gw_config_sections[s].help);
        fputs("| key | value | default | meaning |\n|---|---|---|---|\n", out);
        for (size_t i = 0; i < gw_config_sections[s].n; i++) {
            const struct directive *d = &gw_config_sections[s].keys[i];
            char type[DOC_LINE];
            doc_type(d, type, sizeof type);
            fprintf(out, "| `%s` | %s | %s%s%s | %s |\n", d->key, type,
                    d->def && *d->def ? "`" : "", doc_default(d),
                    d->def && *d->def ? "`" : "", doc_help(d));
        }
    }
}

/* roff: a backslash is \\e; a line may not start with '.' or '\''. */
static void doc_roff(FILE *out, const char *text)
{
    if (*text == '.' || *text == '\'')
        fputs("\\&", out);
    for (; *text; text++) {
        if (*text == '\\')
            fputs("\\e", out);
        else
            fputc(*text, out);
    }
    fputc('\n', out);
}

static void doc_man(FILE *out)
{
    fputs(".\\\" Generated from the tables in gateway/gw_config.c by\n"
          ".\\\" pollgate --config-doc=man: edit those, not this file.\n"
          ".TH POLLGATE.INI 5 \"\" pollgate \"File Formats\"\n"
          ".SH NAME\npollgate.ini \\- pollgate configuration file\n"
          ".SH SYNOPSIS\n.B pollgate \\-c\n.I FILE\n.SH DESCRIPTION\n", out);
    doc_roff(out, intro_text);
    fputs(".SH SYNTAX\n.nf\n", out);
    for (size_t i = 0; i < ARRAY_LEN(syntax_text); i++)
        doc_roff(out, syntax_text[i]);
    fputs(".fi\n", out);
    for (int s = 0; s < S_COUNT; s++) {
        fprintf(out, ".SH \"[%s%s]\"\n", gw_config_sections[s].name,
                s == S_ROUTE ? " NAME" : "");
        doc_roff(out, gw_config_sections[s].help);
        for (size_t i = 0; i < gw_config_sections[s].n; i++) {
            const struct directive *d = &gw_config_sections[s].keys[i];
            char type[DOC_LINE], line[DOC_LINE * 2];
            doc_type(d, type, sizeof type);
            fprintf(out, ".TP\n.B %s\n", d->key);
            doc_roff(out, doc_help(d));
            snprintf(line, sizeof line, "%s. %s%s", type,
                     d->def ? "Default: " : "", d->def ? doc_default(d) : "Required.");
            fputs(".br\n", out);
            doc_roff(out, line);
        }
    }
    fputs(".SH SEE ALSO\n.BR pollgate (8)\n", out);
}

static const char *const doc_formats[] = {
    [GW_CONFIG_DOC_INI] = "ini",
    [GW_CONFIG_DOC_MARKDOWN] = "markdown",
    [GW_CONFIG_DOC_MAN] = "man",
};

int gw_config_doc_format_parse(const char *name, enum gw_config_doc_format *fmt)
{
    for (size_t i = 0; name && i < ARRAY_LEN(doc_formats); i++) {
        if (strcmp(name, doc_formats[i]) == 0) {
            *fmt = (enum gw_config_doc_format)i;
            return 0;
        }
    }
    return GW_EINVAL;
}

int gw_config_doc(FILE *out, enum gw_config_doc_format fmt)
{
    switch (fmt) {
    case GW_CONFIG_DOC_INI: doc_ini(out); break;
    case GW_CONFIG_DOC_MARKDOWN: doc_markdown(out); break;
    case GW_CONFIG_DOC_MAN: doc_man(out); break;
    default: return GW_EINVAL;
    }
    return fflush(out) == 0 && !ferror(out) ? 0 : GW_EIO;
}
