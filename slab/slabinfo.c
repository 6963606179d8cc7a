/*
 * slab/slabinfo.c — the /proc/slabinfo view, version 1.1 as Linux 2.4
 * printed it with statistics on an SMP kernel: per cache
 *   name active_objs num_objs objsize active_slabs num_slabs pages/slab
 *   : high allocs grown reaped errors : limit batchcount
 *   : allochit allocmiss freehit freemiss
 * and after them kslab's own group, the depot of magazines (slab/magazine.c):
 *   : full_mags empty_mags mag_size max_full mags_in mags_out list_locks
 * (list_locks: holds of the cache lock by the arrays and the depot moving
 * objects to or from the slabs; mags_in/mags_out with statistics only),
 * and last the arrays' group:
 *   : cpu_arrays
 * (the per-CPU arrays made for the cache, slab/percpu.c; 0 when the
 * arrays are per thread).
 * A parser of 2.4's columns reads the line as before.  The hit counters
 * add those still in live threads' arrays (read without their owners'
 * cooperation: a racy but harmless snapshot).
 */
#include <errno.h>

#include "slab/slab_internal.h"

struct cache_counts {
    unsigned long active_objs, num_objs, active_slabs, num_slabs;
};

static void count_list(const kmem_cache_t *c, const struct list_head *list,
                       struct cache_counts *n)
{
    const struct list_head *p;
    list_for_each(p, list)
    {
        const slab_t *s = list_entry(p, slab_t, list);
        n->num_slabs++;
        n->num_objs += c->num;
        n->active_objs += s->inuse;
        if (s->inuse)
            n->active_slabs++;
    }
}

static void print_cache(FILE *out, kmem_cache_t *c)
{
    struct cache_counts n = {0, 0, 0, 0};
    pthread_mutex_lock(&c->spinlock);
    count_list(c, &c->slabs_full, &n);
    count_list(c, &c->slabs_partial, &n);
    count_list(c, &c->slabs_free, &n);
#if SLAB_STATS
    unsigned long high = c->high_mark, allocs = c->num_allocations;
    unsigned long grown = c->grown, reaped = c->reaped, errors = c->errors;
    unsigned long ah = c->allochit, am = c->allocmiss, fh = c->freehit,
                  fm = c->freemiss;
#endif
    unsigned long list_locks = c->list_locks;
    pthread_mutex_unlock(&c->spinlock);
    const struct slab_depot *d = &c->depot;
    pthread_mutex_lock(&c->depot.lock);
    unsigned long nfull = d->nfull, nempty = d->nempty;
    unsigned int mag_size = d->mag_size, max_full = d->max_full;
    unsigned long mags_in = 0, mags_out = 0;
#if SLAB_STATS
    mags_in = d->mags_in;
    mags_out = d->mags_out;
#endif
    pthread_mutex_unlock(&c->depot.lock);
#if SLAB_STATS
    slab_sum_thread_stats(c, &ah, &am, &fh, &fm);
    if (c->id)
        slab_percpu_stats(c, &ah, &fh);
#endif
    fprintf(out, "%-17s %6lu %6lu %6u %4lu %4lu %4u", c->name, n.active_objs,
            n.num_objs, c->size, n.active_slabs, n.num_slabs,
            1U << c->gfporder);
#if SLAB_STATS
    fprintf(out, " : %6lu %7lu %5lu %4lu %4lu", high, allocs, grown, reaped,
            errors);
#endif
    fprintf(out, " : %4u %4u", c->id ? c->limit : 0, c->id ? c->batchcount : 0);
#if SLAB_STATS
    fprintf(out, " : %6lu %6lu %6lu %6lu", ah, am, fh, fm);
#endif
    fprintf(out, " : %4lu %4lu %4u %4u %6lu %6lu %6lu", nfull, nempty,
            c->id ? mag_size : 0, c->id ? max_full : 0, mags_in, mags_out,
            list_locks);
    fprintf(out, " : %4u", c->id ? slab_percpu_arrays(c->id) : 0);
    fputc('\n', out);
}

/**
 * kmem_slabinfo - write the /proc/slabinfo text for every cache.
 * Returns 0, or -EINVAL for a NULL stream, -EIO when writing failed.
 */
int kmem_slabinfo(FILE *out)
{
    if (!out)
        return -EINVAL;
    kmem_cache_init();
    fprintf(out, "slabinfo - version: 1.1%s (SMP)\n",
            SLAB_STATS ? " (statistics)" : "");
    slab_for_each_cache(print_cache, out);
    return ferror(out) ? -EIO : 0;
}
