//! The UDP transport. It uses hickory-server's request and response types and the same
//! [`Resolver`], but not hickory-server's UDP loop, which spawns a task per datagram and routes
//! every reply through a channel to a sender task: measured at about half of a core's work per
//! query under load. Here each datagram is decoded and the handler is polled once, inline;
//! answers that are ready (cache hits, blocks, refusals: nearly all of them) are sent at once,
//! and only a query that must wait for an upstream becomes a task of its own.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use hickory_proto::op::{Header, Message, MessageType, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::net::UdpSocket;

use crate::Resolver;
use crate::handler::Fast;

/// Datagrams answered between two yields to other tasks.
const YIELD_EVERY: u32 = 16;

/// Largest datagram read.
const MAX_DATAGRAM: usize = 4096;

/// Serves `socket` until the task is aborted.
pub(crate) async fn serve(socket: Arc<UdpSocket>, resolver: Arc<Resolver>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut served: u32 = 0;
    loop {
        // Answering inline keeps this task busy while queries keep coming; every few
        // datagrams, let the tasks waiting on upstream answers run, or their clients wait for
        // tokio's cooperative budget (128 operations) to run out first.
        served = served.wrapping_add(1);
        if served.is_multiple_of(YIELD_EVERY) {
            tokio::task::yield_now().await;
        }
        let (n, src) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems; keep serving.
                tracing::debug!("DNS/UDP receive: {e}");
                continue;
            }
        };
        let Some(bytes) = buf.get(..n) else { continue };
        if src.port() == 0 {
            continue;
        }
        match resolver.try_fast(bytes, src) {
            Fast::Answer(reply) => {
                send(&socket, &reply, src).await;
                continue;
            }
            Fast::Miss(miss) => {
                let (socket, resolver, raw) = (socket.clone(), resolver.clone(), bytes.to_vec());
                tokio::spawn(async move {
                    match resolver.fill(miss).await {
                        Some(reply) => send(&socket, &reply, src).await,
                        None => full(socket, resolver, raw, src).await,
                    }
                });
                continue;
            }
            Fast::Full => {}
        }
        let mut task = Box::pin(full(socket.clone(), resolver.clone(), bytes.to_vec(), src));
        // Poll once here. A future that is not done has registered nothing that outlives this
        // poll (tokio I/O and timers register again on every poll), so it can move to a task
        // and be polled there with a real waker.
        let mut cx = Context::from_waker(Waker::noop());
        if task.as_mut().poll(&mut cx) == Poll::Pending {
            tokio::spawn(task);
        }
    }
}

/// Sends one answer; the socket buffer is almost never full, and when it is, waits for room.
async fn send(socket: &UdpSocket, reply: &[u8], dst: SocketAddr) {
    if let Err(e) = socket.try_send_to(reply, dst)
        && e.kind() == std::io::ErrorKind::WouldBlock
    {
        let _ = socket.send_to(reply, dst).await;
    }
}

/// The full hickory path: decode (FORMERR if that fails but the header reads), never answer
/// an answer (that would make us a reflector), then [`Resolver`]'s handler.
async fn full(socket: Arc<UdpSocket>, resolver: Arc<Resolver>, raw: Vec<u8>, src: SocketAddr) {
    // Shorter than a header: dropped.
    let Ok(header) = Header::read(&mut BinDecoder::new(&raw)) else {
        return;
    };
    if header.metadata.message_type == MessageType::Response {
        return;
    }
    let Ok(request) = Request::from_bytes(raw, src, Protocol::Udp) else {
        return form_error(&socket, &header, src).await;
    };
    let responder = UdpResponder { socket, dst: src };
    resolver.handle(&request, responder).await;
}

/// A datagram we could not decode but whose header we can read gets FORMERR, as
/// hickory-server answers.
async fn form_error(socket: &UdpSocket, header: &Header, src: SocketAddr) {
    let reply = Message::error_msg(
        header.metadata.id,
        header.metadata.op_code,
        ResponseCode::FormErr,
    );
    if let Ok(out) = reply.to_vec() {
        let _ = socket.send_to(&out, src).await;
    }
}

#[derive(Clone)]
struct UdpResponder {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpResponder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // The client's EDNS size (512 without EDNS, RFC 1035 §4.2.1); the encoder truncates to
        // it and sets TC.
        let max = response.edns().map_or(512, |e| e.max_payload().max(512));
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = response
            .destructive_emit(&mut encoder)
            .map_err(|e| NetError::from(e.to_string()))?;
        self.socket.send_to(&bytes, self.dst).await?;
        Ok(info)
    }
}
