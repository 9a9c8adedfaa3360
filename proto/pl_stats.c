/*  =========================================================================
    pl_stats - plugins' figures on their way to /metrics

    A series travels as a msgpack array of eight: [name, help, type,
    [label name, label value, ...], value, [bounds], [counts], sum]; a
    body is an array of series (proto/ENVELOPE.md, "Stats").
    =========================================================================
*/

#include "pl_stats.h"
#include "pl_mp.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

//  The longest name the host takes: Prometheus has no limit, a page does
#define S_NAME_MAX      128
//  Fields of one series on the wire
#define S_FIELDS        8

struct _pl_stats_t {
    pl_buf_t buffer;                //  the series packed so far
    msgpack_packer packer;          //  writes into buffer
    size_t count;                   //  series in buffer
};

//  One series as read back from a body: strings borrowed from it
typedef struct {
    const char *name, *help;
    uint32_t name_size, help_size;
    uint32_t type;
    const char *labels [PARLEY_METRIC_LABELS_MAX * 2];
    uint32_t label_sizes [PARLEY_METRIC_LABELS_MAX * 2];
    uint32_t label_count;           //  strings: twice the labels
    double value;
    double bounds [PARLEY_METRIC_BOUNDS_MAX];
    uint64_t counts [PARLEY_METRIC_BOUNDS_MAX + 1];
    uint32_t bound_count;
    double sum;
} s_series_t;

//  Where one series starts, for sorting by name
typedef struct {
    const pl_stats_part_t *part;
    size_t offset;
    const uint8_t *name;
    uint32_t name_size;
    size_t order;
} s_entry_t;

pl_stats_t *
pl_stats_new (void)
{
    pl_stats_t *self = (pl_stats_t *) calloc (1, sizeof (pl_stats_t));
    if (self)
        msgpack_packer_init (&self->packer, &self->buffer, pl_buf_packer_write);
    return self;
}

void
pl_stats_destroy (pl_stats_t **self_p)
{
    pl_stats_t *self = *self_p;
    if (!self)
        return;
    pl_buf_free (&self->buffer);
    free (self);
    *self_p = NULL;
}

//  [a-z_][a-z0-9_]*: the names the ABI takes, a subset of Prometheus'
static bool
s_word_sized (const char *text, size_t size)
{
    if (!text || size == 0 || (text [0] >= '0' && text [0] <= '9'))
        return false;
    for (size_t index = 0; index < size; index++) {
        char ch = text [index];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return false;
    }
    return true;
}

static bool
s_word (const char *text)
{
    return text && s_word_sized (text, strlen (text));
}

//  The labels' rules; their count in *count_p (names and values)
static const char *
s_check_labels (const char *const *labels, uint32_t *count_p)
{
    uint32_t count = 0;
    for (; labels && labels [count]; count += 2) {
        if (count == PARLEY_METRIC_LABELS_MAX * 2)
            return "has more than PARLEY_METRIC_LABELS_MAX labels";
        const char *name = labels [count];
        if (!s_word (name) || strncmp (name, "__", 2) == 0
        ||  strcmp (name, "le") == 0 || strcmp (name, "instance") == 0)
            return "has a label name that is not [a-z_][a-z0-9_]*, or is le or instance";
        if (!labels [count + 1])
            return "has a label without a value";
    }
    *count_p = count;
    return NULL;
}

static const char *
s_check_histogram (const parley_metric_t *metric)
{
    if (!metric->bounds || !metric->counts || metric->bound_count < 1
    ||  metric->bound_count > PARLEY_METRIC_BOUNDS_MAX)
        return "is a histogram without 1 to PARLEY_METRIC_BOUNDS_MAX bounds and their counts";
    for (uint32_t index = 0; index < metric->bound_count; index++)
        if (!isfinite (metric->bounds [index])
        ||  (index && metric->bounds [index] <= metric->bounds [index - 1]))
            return "has bounds that are not finite and ascending";
    return NULL;
}

//  Why the ABI refuses metric, or NULL
static const char *
s_check (const parley_metric_t *metric, uint32_t *label_count_p)
{
    if (metric->size < offsetof (parley_metric_t, sum) + sizeof metric->sum)
        return "is smaller than an ABI 1.4 parley_metric_t";
    if (!s_word (metric->name) || strncmp (metric->name, "parley_", 7) != 0
    ||  strlen (metric->name) > S_NAME_MAX)
        return "has a name that is not parley_ then [a-z0-9_] (128 at most)";
    if (metric->type < PARLEY_METRIC_COUNTER || metric->type > PARLEY_METRIC_HISTOGRAM)
        return "has no type of parley_metric_type_t";
    if (metric->type == PARLEY_METRIC_COUNTER && !(metric->value >= 0))
        return "is a counter below 0";
    const char *why = s_check_labels (metric->labels, label_count_p);
    if (!why && metric->type == PARLEY_METRIC_HISTOGRAM)
        why = s_check_histogram (metric);
    return why;
}

static void
s_pack_str (msgpack_packer *packer, const char *text)
{
    size_t size = text ? strlen (text) : 0;
    msgpack_pack_str (packer, size);
    msgpack_pack_str_body (packer, text ? text : "", size);
}

int
pl_stats_add (pl_stats_t *self, const parley_metric_t *metric, char *error, size_t error_size)
{
    uint32_t label_count = 0;
    const char *why = metric ? s_check (metric, &label_count) : "is NULL";
    if (why) {
        snprintf (error, error_size, "the metric '%s' %s",
                  metric && metric->name ? metric->name : "", why);
        return -1;
    }
    bool histogram = metric->type == PARLEY_METRIC_HISTOGRAM;
    uint32_t bounds = histogram ? metric->bound_count : 0;
    msgpack_packer *packer = &self->packer;
    msgpack_pack_array (packer, S_FIELDS);
    s_pack_str (packer, metric->name);
    s_pack_str (packer, metric->help);
    msgpack_pack_uint32 (packer, metric->type);
    msgpack_pack_array (packer, label_count);
    for (uint32_t index = 0; index < label_count; index++)
        s_pack_str (packer, metric->labels [index]);
    msgpack_pack_double (packer, histogram ? 0 : metric->value);
    msgpack_pack_array (packer, bounds);
    for (uint32_t index = 0; index < bounds; index++)
        msgpack_pack_double (packer, metric->bounds [index]);
    msgpack_pack_array (packer, histogram ? bounds + 1 : 0);
    for (uint32_t index = 0; histogram && index <= bounds; index++)
        msgpack_pack_uint64 (packer, metric->counts [index]);
    msgpack_pack_double (packer, histogram ? metric->sum : 0);
    self->count++;
    return 0;
}

size_t
pl_stats_count (pl_stats_t *self)
{
    return self->count;
}

uint8_t *
pl_stats_body (pl_stats_t *self, size_t *size_p)
{
    pl_buf_t body = { 0 };
    msgpack_packer packer;
    msgpack_packer_init (&packer, &body, pl_buf_packer_write);
    msgpack_pack_array (&packer, (uint32_t) self->count);
    pl_buf_append (&body, self->buffer.data, self->buffer.size);
    bool failed = body.failed || self->buffer.failed;
    pl_buf_free (&self->buffer);
    self->count = 0;
    if (failed) {
        pl_buf_free (&body);
        return NULL;
    }
    *size_p = body.size;
    return body.data;
}


//  --------------------------------------------------------------------------
//  Reading bodies back, at the broker

static int
s_read_str (pl_mp_reader_t *reader, const char **text_p, uint32_t *size_p)
{
    pl_mp_item_t item;
    if (pl_mp_next (reader, &item) || item.kind != PL_MP_STR)
        return -1;
    *text_p = (const char *) item.bytes;
    *size_p = item.length;
    return 0;
}

static int
s_read_double (pl_mp_reader_t *reader, double *value_p)
{
    pl_mp_item_t item;
    if (pl_mp_next (reader, &item))
        return -1;
    if (item.kind == PL_MP_FLOAT)
        *value_p = item.real;
    else
    if (item.kind == PL_MP_UINT)
        *value_p = (double) item.uint;
    else
    if (item.kind == PL_MP_INT)
        *value_p = (double) item.sint;
    else
        return -1;
    return 0;
}

//  An array header of at most max elements; its count in *count_p
static int
s_read_array (pl_mp_reader_t *reader, uint32_t max, uint32_t *count_p)
{
    pl_mp_item_t item;
    if (pl_mp_next (reader, &item) || item.kind != PL_MP_ARRAY || item.length > max)
        return -1;
    *count_p = item.length;
    return 0;
}

static int
s_read_lists (pl_mp_reader_t *reader, s_series_t *series)
{
    uint32_t count;
    if (s_read_array (reader, PARLEY_METRIC_BOUNDS_MAX, &series->bound_count))
        return -1;
    for (uint32_t index = 0; index < series->bound_count; index++)
        if (s_read_double (reader, &series->bounds [index]))
            return -1;
    if (s_read_array (reader, PARLEY_METRIC_BOUNDS_MAX + 1, &count)
    ||  (series->type == PARLEY_METRIC_HISTOGRAM && count != series->bound_count + 1))
        return -1;
    pl_mp_item_t item;
    for (uint32_t index = 0; index < count; index++) {
        if (pl_mp_next (reader, &item) || item.kind != PL_MP_UINT)
            return -1;
        series->counts [index] = item.uint;
    }
    return s_read_double (reader, &series->sum);
}

//  Reads one series at the reader, checking what would break the page (a
//  name or a label name the ABI refuses). Returns 0, or -1: the reader is
//  then anywhere in it
static int
s_read_series (pl_mp_reader_t *reader, s_series_t *series)
{
    uint32_t fields;
    pl_mp_item_t item;
    if (s_read_array (reader, UINT32_MAX, &fields) || fields != S_FIELDS
    ||  s_read_str (reader, &series->name, &series->name_size)
    ||  !s_word_sized (series->name, series->name_size) || series->name_size < 7
    ||  memcmp (series->name, "parley_", 7) != 0
    ||  s_read_str (reader, &series->help, &series->help_size)
    ||  pl_mp_next (reader, &item) || item.kind != PL_MP_UINT
    ||  item.uint < PARLEY_METRIC_COUNTER || item.uint > PARLEY_METRIC_HISTOGRAM)
        return -1;
    series->type = (uint32_t) item.uint;
    if (s_read_array (reader, PARLEY_METRIC_LABELS_MAX * 2, &series->label_count)
    ||  series->label_count % 2)
        return -1;
    for (uint32_t index = 0; index < series->label_count; index++)
        if (s_read_str (reader, &series->labels [index], &series->label_sizes [index])
        ||  (index % 2 == 0 && !s_word_sized (series->labels [index],
                                              series->label_sizes [index])))
            return -1;
    if (s_read_double (reader, &series->value))
        return -1;
    return s_read_lists (reader, series);
}


//  --------------------------------------------------------------------------
//  Writing the text

//  A number as the text format takes it, in as few digits as give it back
static void
s_write_number (FILE *out, double value)
{
    if (isnan (value))
        fputs ("NaN", out);
    else
    if (isinf (value))
        fputs (value > 0 ? "+Inf" : "-Inf", out);
    else {
        char text [32];
        snprintf (text, sizeof text, "%.15g", value);
        if (strtod (text, NULL) != value)
            snprintf (text, sizeof text, "%.17g", value);
        fputs (text, out);
    }
}

//  Text escaped as the format wants: \ and newline, and " in label values
static void
s_write_escaped (FILE *out, const char *text, size_t size, bool quote)
{
    for (size_t index = 0; index < size; index++) {
        char ch = text [index];
        if (ch == '\\' || (quote && ch == '"'))
            fputc ('\\', out);
        if (ch == '\n')
            fputs ("\\n", out);
        else
            fputc (ch, out);
    }
}

//  name + suffix {labels, instance, le} value
static void
s_write_sample (FILE *out, const s_series_t *series, const char *instance, const char *suffix,
                const char *le, double value)
{
    fwrite (series->name, 1, series->name_size, out);
    fprintf (out, "%s{", suffix);
    for (uint32_t index = 0; index < series->label_count; index += 2) {
        fwrite (series->labels [index], 1, series->label_sizes [index], out);
        fputs ("=\"", out);
        s_write_escaped (out, series->labels [index + 1], series->label_sizes [index + 1], true);
        fputs ("\",", out);
    }
    fputs ("instance=\"", out);
    s_write_escaped (out, instance, strlen (instance), true);
    fputc ('"', out);
    if (le)
        fprintf (out, ",le=\"%s\"", le);
    fputs ("} ", out);
    s_write_number (out, value);
    fputc ('\n', out);
}

static void
s_write_series (FILE *out, const s_series_t *series, const char *instance)
{
    if (series->type != PARLEY_METRIC_HISTOGRAM) {
        s_write_sample (out, series, instance, "", NULL, series->value);
        return;
    }
    uint64_t cumulative = 0;
    for (uint32_t index = 0; index <= series->bound_count; index++) {
        cumulative += series->counts [index];
        char le [32] = "+Inf";
        if (index < series->bound_count) {
            FILE *bound = fmemopen (le, sizeof le, "w");
            if (bound) {
                s_write_number (bound, series->bounds [index]);
                fclose (bound);
            }
        }
        s_write_sample (out, series, instance, "_bucket", le, (double) cumulative);
    }
    s_write_sample (out, series, instance, "_sum", NULL, series->sum);
    s_write_sample (out, series, instance, "_count", NULL, (double) cumulative);
}

static void
s_write_family (FILE *out, const s_series_t *series)
{
    static const char *types [] = { "", "counter", "gauge", "histogram" };
    fputs ("# HELP ", out);
    fwrite (series->name, 1, series->name_size, out);
    fputc (' ', out);
    s_write_escaped (out, series->help, series->help_size, false);
    fputs ("\n# TYPE ", out);
    fwrite (series->name, 1, series->name_size, out);
    fprintf (out, " %s\n", types [series->type]);
}

//  By name, then in the order reported
static int
s_compare_entries (const void *item1, const void *item2)
{
    const s_entry_t *entry1 = (const s_entry_t *) item1;
    const s_entry_t *entry2 = (const s_entry_t *) item2;
    uint32_t common = entry1->name_size < entry2->name_size ? entry1->name_size
                                                            : entry2->name_size;
    int order = memcmp (entry1->name, entry2->name, common);
    if (order == 0 && entry1->name_size != entry2->name_size)
        order = entry1->name_size < entry2->name_size ? -1 : 1;
    if (order == 0)
        order = entry1->order < entry2->order ? -1 : entry1->order > entry2->order;
    return order;
}

//  Every whole series of every part, unsorted; their count in *count_p
static s_entry_t *
s_entries (const pl_stats_part_t *parts, size_t part_count, size_t *count_p)
{
    size_t count = 0, capacity = 0;
    s_entry_t *entries = NULL;
    for (size_t index = 0; index < part_count; index++) {
        pl_mp_reader_t reader;
        pl_mp_reader_init (&reader, parts [index].data, parts [index].size);
        uint32_t series_count;
        if (s_read_array (&reader, UINT32_MAX, &series_count))
            continue;
        for (uint32_t at = 0; at < series_count; at++) {
            s_series_t series;
            size_t offset = reader.pos;
            if (s_read_series (&reader, &series))
                break;          //  the rest of this part cannot be trusted
            if (count == capacity) {
                capacity = capacity ? capacity * 2 : 64;
                s_entry_t *grown = (s_entry_t *) realloc (entries, capacity * sizeof *entries);
                if (!grown)
                    break;
                entries = grown;
            }
            if (count < capacity)
                entries [count++] = (s_entry_t) { &parts [index], offset,
                    (const uint8_t *) series.name, series.name_size, count };
        }
    }
    *count_p = count;
    return entries;
}

size_t
pl_stats_render (FILE *out, const pl_stats_part_t *parts, size_t part_count)
{
    size_t count = 0, written = 0;
    s_entry_t *entries = s_entries (parts, part_count, &count);
    if (!entries)
        return 0;
    qsort (entries, count, sizeof *entries, s_compare_entries);
    uint32_t family_type = 0;
    for (size_t index = 0; index < count; index++) {
        const s_entry_t *entry = &entries [index];
        pl_mp_reader_t reader;
        pl_mp_reader_init (&reader, entry->part->data, entry->part->size);
        reader.pos = entry->offset;
        s_series_t series;
        if (s_read_series (&reader, &series))
            continue;
        if (index == 0 || entry [-1].name_size != entry->name_size
        ||  memcmp (entry [-1].name, entry->name, entry->name_size) != 0) {
            family_type = series.type;
            s_write_family (out, &series);
        }
        if (series.type != family_type)
            continue;           //  a family has one type: the first reported
        s_write_series (out, &series, entry->part->instance);
        written++;
    }
    free (entries);
    return written;
}
