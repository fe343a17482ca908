//! Bytes that arrive on an async task, read by blocking code (a decompressor, a JSON
//! decoder) on a thread of its own: the producer sends chunks through a bounded
//! channel, so only a few chunks are in memory at a time, never the whole body.

/// A blocking reader over chunks sent by a producing task. A closed channel is the end
/// of the data: when the producer fails, the reader sees truncated data and stops.
pub struct ChannelReader<B> {
    receiver: tokio::sync::mpsc::Receiver<B>,
    chunk: Option<B>,
    offset: usize,
}

impl<B> ChannelReader<B> {
    pub fn new(receiver: tokio::sync::mpsc::Receiver<B>) -> Self {
        ChannelReader {
            receiver,
            chunk: None,
            offset: 0,
        }
    }
}

impl<B: AsRef<[u8]>> std::io::Read for ChannelReader<B> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(chunk) = &self.chunk {
                let rest = &chunk.as_ref()[self.offset..];
                if !rest.is_empty() {
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    self.offset += n;
                    return Ok(n);
                }
            }
            match self.receiver.blocking_recv() {
                Some(chunk) => {
                    self.chunk = Some(chunk);
                    self.offset = 0;
                }
                None => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn chunks_read_back_in_order_and_end_when_the_sender_goes() {
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        let producer = std::thread::spawn(move || {
            for chunk in [&b"{\"a\":"[..], b"", b"[1,2", b"]}"] {
                sender.blocking_send(chunk.to_vec()).expect("send");
            }
        });
        let mut text = String::new();
        ChannelReader::new(receiver)
            .read_to_string(&mut text)
            .expect("read");
        producer.join().expect("producer");
        assert_eq!(text, r#"{"a":[1,2]}"#);
    }
}
