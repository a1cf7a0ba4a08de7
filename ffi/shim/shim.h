/* The static-inline DPDK fast path, re-exported as real symbols Rust can call.
 * Compiled with exactly `pkg-config --cflags libdpdk` so the inlined code matches the
 * headers the system library was built from. */
#ifndef IMSAGW_DPDK_SHIM_H
#define IMSAGW_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                               uint16_t nb_pkts);
uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                               uint16_t nb_pkts);

struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp);
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void shim_rte_pktmbuf_free(struct rte_mbuf *m);

/* rte_pktmbuf_mtod(m, void *) */
uint8_t *shim_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t shim_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_nb_segs(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
uint8_t *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
uint8_t *shim_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
uint8_t *shim_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int shim_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t shim_rte_mbuf_refcnt_read(const struct rte_mbuf *m);
struct rte_mempool *shim_rte_mbuf_pool(const struct rte_mbuf *m);

int shim_rte_errno(void);
unsigned shim_rte_lcore_id(void);

/* Pool layout: the number of memory chunks, and a pool packed in one area (AF_XDP). */
unsigned shim_rte_mempool_mem_chunks(const struct rte_mempool *mp);
struct rte_mempool *shim_rte_pktmbuf_pool_create_packed(const char *name, unsigned n,
                                                        unsigned cache_size,
                                                        uint16_t data_room_size,
                                                        int socket_id);

uint64_t shim_rte_mempool_obj_span(struct rte_mempool *mp, uint64_t *obj_size);

/* Macro values bindgen cannot evaluate. */
uint16_t shim_rte_pktmbuf_headroom_size(void);
uint16_t shim_rte_mbuf_default_buf_size(void);

#endif
