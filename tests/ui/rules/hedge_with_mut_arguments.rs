use resilient::{Rejection, resilient};

#[derive(Debug)]
pub enum Error {
    Down,
    Rejected(Rejection),
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error::Rejected(rejection)
    }
}

pub struct Cart {
    items: Vec<u32>,
}

impl Cart {
    #[resilient(hedge = "50ms")]
    async fn add(&mut self, item: u32) -> Result<usize, Error> {
        self.items.push(item);
        Ok(self.items.len())
    }
}

#[resilient(hedge = "50ms", hedges = 2)]
async fn fill(buffer: &mut Vec<u8>) -> Result<usize, Error> {
    buffer.push(1);
    Ok(buffer.len())
}

#[resilient(hedge = "50ms", hedges = 11)]
async fn price(sku: &str) -> Result<u32, Error> {
    let _ = sku;
    Err(Error::Down)
}

fn main() {}
