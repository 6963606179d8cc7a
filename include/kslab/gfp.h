/*
 * <kslab/gfp.h> — the allocation flags (gfp_mask) of Linux 2.4's
 * <linux/mm.h>, shared by the slab layer (<kslab/slab.h>) and the page
 * layer (<kslab/vm.h>).  Values are 2.4's.
 */
#ifndef KSLAB_GFP_H
#define KSLAB_GFP_H

/*
 * The modifiers, with their 2.4 meaning.  kslab never sleeps for memory,
 * so of these only three change anything: __GFP_DMA (the frames come from
 * ZONE_DMA), __GFP_HIGHMEM (alloc_pages may give ZONE_HIGHMEM frames) and
 * __GFP_WAIT (without it, a constructor is called with SLAB_CTOR_ATOMIC).
 * GFP_DMA may be or-ed into the masks below.
 */
#define __GFP_WAIT 0x01    /* may sleep */
#define __GFP_HIGH 0x02    /* may use the emergency pool */
#define __GFP_IO 0x04      /* may start I/O */
#define __GFP_DMA 0x08     /* from ZONE_DMA */
#define __GFP_HIGHMEM 0x10 /* may come from ZONE_HIGHMEM */
#define __GFP_FS 0x80      /* may call into the file system */

#define GFP_ATOMIC (__GFP_HIGH)
#define GFP_NOIO (__GFP_HIGH | __GFP_WAIT)
#define GFP_NOFS (__GFP_HIGH | __GFP_WAIT | __GFP_IO)
#define GFP_KERNEL (__GFP_HIGH | __GFP_WAIT | __GFP_IO | __GFP_FS)
#define GFP_USER (__GFP_WAIT | __GFP_IO | __GFP_FS)
#define GFP_HIGHUSER (__GFP_WAIT | __GFP_IO | __GFP_FS | __GFP_HIGHMEM)
#define GFP_DMA __GFP_DMA

#endif /* KSLAB_GFP_H */
