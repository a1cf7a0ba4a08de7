#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>

#include "shim.h"

uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                               uint16_t nb_pkts) {
  return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                               uint16_t nb_pkts) {
  return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count) {
  return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void shim_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

uint8_t *shim_rte_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, uint8_t *); }
uint16_t shim_rte_pktmbuf_data_len(const struct rte_mbuf *m) { return rte_pktmbuf_data_len(m); }
uint32_t shim_rte_pktmbuf_pkt_len(const struct rte_mbuf *m) { return rte_pktmbuf_pkt_len(m); }
uint16_t shim_rte_pktmbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }
uint16_t shim_rte_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }

uint8_t *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len) {
  return (uint8_t *)rte_pktmbuf_append(m, len);
}
uint8_t *shim_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) {
  return (uint8_t *)rte_pktmbuf_prepend(m, len);
}
uint8_t *shim_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) {
  return (uint8_t *)rte_pktmbuf_adj(m, len);
}
int shim_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
uint16_t shim_rte_mbuf_refcnt_read(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }
struct rte_mempool *shim_rte_mbuf_pool(const struct rte_mbuf *m) { return m->pool; }

int shim_rte_errno(void) { return rte_errno; }
unsigned shim_rte_lcore_id(void) { return rte_lcore_id(); }

uint16_t shim_rte_pktmbuf_headroom_size(void) { return RTE_PKTMBUF_HEADROOM; }
uint16_t shim_rte_mbuf_default_buf_size(void) { return RTE_MBUF_DEFAULT_BUF_SIZE; }

unsigned shim_rte_mempool_mem_chunks(const struct rte_mempool *mp) { return mp->nb_mem_chunks; }

/* rte_pktmbuf_pool_create with the objects packed in one virtually contiguous area
 * (RTE_MEMPOOL_F_NO_IOVA_CONTIG lets them cross page boundaries): an AF_XDP port registers
 * the pool's memory as its UMEM from the first chunk's start for (objects x object size)
 * bytes, so objects anywhere else would be given to the kernel outside the UMEM and never
 * come back. Returns NULL with rte_errno set on failure. */
struct rte_mempool *shim_rte_pktmbuf_pool_create_packed(const char *name, unsigned n,
                                                        unsigned cache_size,
                                                        uint16_t data_room_size,
                                                        int socket_id) {
  struct rte_pktmbuf_pool_private priv = {
      .mbuf_data_room_size = data_room_size,
      .mbuf_priv_size = 0,
  };
  unsigned elt_size = sizeof(struct rte_mbuf) + (unsigned)data_room_size;
  struct rte_mempool *mp = rte_mempool_create_empty(name, n, elt_size, cache_size, sizeof(priv),
                                                    socket_id, RTE_MEMPOOL_F_NO_IOVA_CONTIG);
  if (mp == NULL) return NULL;
  int ret = rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), NULL);
  if (ret != 0) {
    rte_mempool_free(mp);
    rte_errno = -ret;
    return NULL;
  }
  rte_pktmbuf_pool_init(mp, &priv);
  ret = rte_mempool_populate_default(mp);
  if (ret < 0) {
    rte_mempool_free(mp);
    rte_errno = -ret;
    return NULL;
  }
  rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
  return mp;
}

/* Bytes from the first object of a pool to the end of its last, and (in *obj_size) the size
 * of one object with its header and trailer: a pool whose objects are packed spans exactly
 * n * obj_size bytes. */
struct span_acc {
  uintptr_t lo, hi;
};
static void span_obj(struct rte_mempool *mp, void *arg, void *obj, unsigned idx) {
  (void)mp;
  (void)idx;
  struct span_acc *a = arg;
  uintptr_t p = (uintptr_t)obj;
  if (p < a->lo) a->lo = p;
  if (p > a->hi) a->hi = p;
}
uint64_t shim_rte_mempool_obj_span(struct rte_mempool *mp, uint64_t *obj_size) {
  struct span_acc a = {UINTPTR_MAX, 0};
  *obj_size = (uint64_t)mp->header_size + mp->elt_size + mp->trailer_size;
  rte_mempool_obj_iter(mp, span_obj, &a);
  if (a.hi < a.lo) return 0;
  return (uint64_t)(a.hi - a.lo) + *obj_size;
}
