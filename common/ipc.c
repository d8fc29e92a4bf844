/* ipc.c - ZeroMQ socket helpers (see ipc.h). */
#include "ipc.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <zmq.h>

void *ipc_open(void *zctx, int type, const char *run_dir, const char *name, int bind)
{
    char ep[512];
    snprintf(ep, sizeof ep, "ipc://%s/%s.ipc", run_dir, name);
    void *s = zmq_socket(zctx, type);
    if (!s) {
        LOG_ERR("zmq_socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    int linger = 0, hwm = 0; /* no limit: the router never blocks on a slow peer */
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if ((bind ? zmq_bind(s, ep) : zmq_connect(s, ep)) != 0) {
        LOG_ERR("%s %s: %s", bind ? "bind" : "connect", ep, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    return s;
}

void ipc_close(void *sock)
{
    if (sock)
        zmq_close(sock);
}

int ipc_reopen(void **sock, void *zctx, int type, const char *run_dir, const char *name, int bind)
{
    ipc_close(*sock);
    *sock = ipc_open(zctx, type, run_dir, name, bind);
    return *sock ? 0 : -1;
}

int ipc_send(void *sock, int type, const void *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = msg_pack(&sb, type, m);
    if (!rc && zmq_send(sock, sb.data, sb.size, ZMQ_DONTWAIT) < 0)
        rc = -zmq_errno();
    msgpack_sbuffer_destroy(&sb);
    if (rc && rc != -EAGAIN) /* EAGAIN: no peer right now (it restarts); the caller decides */
        LOG_WARN("send %s: %s", msg_type_name(type), zmq_strerror(-rc));
    return rc;
}

int ipc_recv(void *sock, msg_any *out)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc = zmq_msg_recv(&m, sock, ZMQ_DONTWAIT);
    if (rc < 0) {
        int e = zmq_errno();
        zmq_msg_close(&m);
        return e == EAGAIN || e == EINTR ? 0 : -e;
    }
    size_t n = zmq_msg_size(&m);
    rc = msg_unpack(zmq_msg_data(&m), n, out);
    zmq_msg_close(&m);
    if (rc) {
        LOG_WARN("dropped a malformed message (%zu bytes)", n);
        return rc;
    }
    return 1;
}

int ipc_wait(void *sock, long timeout_ms)
{
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    int rc = zmq_poll(&it, 1, timeout_ms);
    if (rc < 0)
        return zmq_errno() == EINTR ? 0 : -zmq_errno();
    return rc > 0;
}

int ipc_fd(void *sock)
{
    int fd = -1;
    size_t n = sizeof fd;
    zmq_getsockopt(sock, ZMQ_FD, &fd, &n);
    return fd;
}
